package testenv

import (
	"net"
	"testing"
)

func TestTCPAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("SESSIONKIT_TEST_ADDR", ln.Addr().String())
	if got := TCPAddr(t, "SESSIONKIT_TEST_ADDR", "127.0.0.1:1"); got != ln.Addr().String() {
		t.Fatalf("got %q; want %q", got, ln.Addr())
	}
}

func TestMissing(t *testing.T) {
	t.Setenv("CI", "")
	ran := false
	t.Run("skips outside CI", func(t *testing.T) {
		ran = true
		Missing(t, "nothing here")
		t.Fatal("Missing did not stop the test")
	})
	if !ran {
		t.Fatal("subtest did not run")
	}
}
