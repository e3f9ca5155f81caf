package orchestrator

// QueuedForTest reports how many commands wait for a group committer.
func QueuedForTest[TTx any](o *Orchestrator[TTx]) int {
	if o.group == nil {
		return 0
	}
	o.group.mu.Lock()
	defer o.group.mu.Unlock()
	return len(o.group.queue)
}
