//go:build !linux

package gateway

import "net"

// newRawSock is Linux's raw socket calls (rawsock_linux.go); elsewhere
// the fast loop uses net.Conn's.
func newRawSock(net.Conn) sockIO { return nil }
