package listener

// SetSharedWindow sets how many events the shared reader's window keeps
// and returns a function that restores it.
func SetSharedWindow(n int) (restore func()) {
	old := sharedWindow
	sharedWindow = n
	return func() { sharedWindow = old }
}
