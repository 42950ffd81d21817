package memcachedstore_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// serverStats returns the answer of "stats <what>" from the server at addr.
func serverStats(t testing.TB, addr, what string) map[string]string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	cmd := "stats\r\n"
	if what != "" {
		cmd = "stats " + what + "\r\n"
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string)
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s on %s: %v", strings.TrimSpace(cmd), addr, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			return m
		}
		if f := strings.Fields(line); len(f) == 3 && f[0] == "STAT" {
			m[f[1]] = f[2]
		}
	}
}
