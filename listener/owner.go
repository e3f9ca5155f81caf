package listener

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
)

// defaultOwner names this process for the leases table: readable for a DBA
// (host and pid) and unique across restarts and across several
// subscriptions objects in one process (random suffix).
func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
