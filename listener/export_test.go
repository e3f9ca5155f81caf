package listener

// SetSharedWindow sets how many events the shared reader's window keeps
// and returns a function that restores it.
func SetSharedWindow(n int) (restore func()) {
	old := sharedWindow
	sharedWindow = n
	return func() { sharedWindow = old }
}

// ReadAlone makes the readers created until restore read the log alone,
// never through a shared reader.
func ReadAlone() (restore func()) {
	shareReads = false
	return func() { shareReads = true }
}
