package testenv

import (
	"context"
	"net"
	"testing"
)

// FreeAddr returns a loopback address with a port nothing listens on at the
// moment: for a server a test starts, or for one it wants not to answer.
// Another process could take the port before the test does; on a test
// machine that is rare enough.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
