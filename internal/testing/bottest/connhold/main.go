// Command connhold is the idle-connection half of the bot's load test
// (internal/testing/bottest.HoldIdle): it opens -n TCP connections to -addr, a
// loopback address only, sends nothing on them, prints "ready OPENED
// FAILED" and holds them until its standard input closes. It runs as a
// process of its own so the connections do not count against the test's
// open-file limit.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "", "loopback host:port to connect to")
	n := flag.Int("n", 0, "connections to open")
	flag.Parse()
	if err := run(*addr, *n); err != nil {
		fmt.Fprintln(os.Stderr, "connhold:", err)
		os.Exit(1)
	}
}

func run(addr string, n int) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("-addr must be a loopback address: this is a load generator")
	}
	conns := make([]net.Conn, 0, n)
	failed := 0
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			failed++
			continue
		}
		conns = append(conns, c)
	}
	fmt.Printf("ready %d %d\n", len(conns), failed)
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}
