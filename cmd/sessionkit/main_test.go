package main_test

import (
	"bufio"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestEndToEnd builds the binary, runs "sessionkit serve", talks to it
// like curl (a plain client that sends the cookie by hand, over http, with
// the cookie's default Secure attribute), and stops it with SIGTERM.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if runtime.GOOS == "windows" {
		t.Skip("SIGTERM cannot be sent on Windows")
	}
	bin := filepath.Join(t.TempDir(), "sessionkit")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--node", "e2e")
	cmd.Env = []string{} // no SESSIONKIT_* from the test's environment
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	// Collect stderr; hand the first line with the address to the test.
	var (
		mu     sync.Mutex
		stderr strings.Builder
	)
	addrc := make(chan string, 1)
	drained := make(chan struct{})
	re := regexp.MustCompile(`^sessionkit serve: node e2e \(strategy memory\) listening on (http://127\.0\.0\.1:\d+)$`)
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderrPipe)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			stderr.WriteString(line + "\n")
			mu.Unlock()
			if m := re.FindStringSubmatch(line); m != nil {
				addrc <- m[1]
			}
		}
	}()
	var url string
	select {
	case url = <-addrc:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("no listening line within 30s; stderr:\n%s", stderr.String())
	}

	client := &http.Client{Timeout: 5 * time.Second}
	var cookie string // "__Host-session=<id>", sent by hand
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("X-Node"); got != "e2e" {
			t.Errorf("%s %s: X-Node %q; want e2e", method, path, got)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name != "__Host-session" {
				continue
			}
			if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
				t.Errorf("%s %s: cookie Secure=%t HttpOnly=%t SameSite=%v; want Secure, HttpOnly, Lax",
					method, path, ck.Secure, ck.HttpOnly, ck.SameSite)
			}
			cookie = "__Host-session=" + ck.Value
		}
		return resp.StatusCode, strings.TrimSuffix(string(b), "\n")
	}

	for _, step := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/login", `{"user":"alice"}`, 200, `{"user":"alice","node":"e2e"}`},
		{"POST", "/cart", `{"item":"tea"}`, 200, `{"user":"alice","items":["tea"],"node":"e2e"}`},
		{"GET", "/cart", "", 200, `{"user":"alice","items":["tea"],"node":"e2e"}`},
	} {
		status, body := do(step.method, step.path, step.body)
		if status != step.status || body != step.want {
			t.Fatalf("%s %s: %d %s; want %d %s", step.method, step.path, status, body, step.status, step.want)
		}
	}
	if !strings.HasSuffix(cookie, ".e2e") {
		t.Errorf("session ID %q... does not carry the route tag .e2e", cookie[:min(len(cookie), 12)])
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		<-drained // Wait closes the pipe; read it all first
		waited <- cmd.Wait()
	}()
	select {
	case err := <-waited:
		exited = true
		if err != nil {
			t.Errorf("exit: %v; want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sessionkit serve did not exit within 15s of SIGTERM")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(stderr.String(), "sessionkit serve: stopped") {
		t.Errorf("stderr does not say stopped:\n%s", stderr.String())
	}
}
