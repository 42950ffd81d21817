package balancer_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

// nginxConfig is the http block docs/balancer.md shows (two maps from the
// session cookie's route tag to an upstream; each node's upstream lists the
// others as backups), for three nodes, inside the few lines nginx needs to
// run as a test's child process.
const nginxConfig = `daemon off;
master_process off;
pid {{.Dir}}/nginx.pid;
error_log stderr warn;
events {}
http {
    access_log off;
    client_body_temp_path {{.Dir}}/body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;

    # The route tag: what follows the last '.' of the session cookie,
    # __Host-session (sessionkit's default; nginx has no $cookie_ variable
    # for a name with a '-'), else session.
    map $http_cookie $sk_route {
        "~(?:^|;\s*)__Host-session=[^;]*\.(?<tag>[A-Za-z0-9_-]{1,64})(?:;|$)" $tag;
        "~(?:^|;\s*)session=[^;]*\.(?<tag>[A-Za-z0-9_-]{1,64})(?:;|$)" $tag;
        default "";
    }
    map $sk_route $sk_upstream {
        n1 sk_n1;
        n2 sk_n2;
        n3 sk_n3;
        default sk_all;
    }
    upstream sk_n1 { server {{.N1}}; server {{.N2}} backup; server {{.N3}} backup; keepalive 32; }
    upstream sk_n2 { server {{.N2}}; server {{.N1}} backup; server {{.N3}} backup; keepalive 32; }
    upstream sk_n3 { server {{.N3}}; server {{.N1}} backup; server {{.N2}} backup; keepalive 32; }
    upstream sk_all { server {{.N1}}; server {{.N2}}; server {{.N3}}; keepalive 32; }

    server {
        listen {{.Listen}};
        location / {
            proxy_pass http://$sk_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_next_upstream error timeout;
        }
    }
}
`

// TestNginx_routeTag, with the nodes' session cookie named __Host-session
// (the default) and then session, puts a real nginx, configured as docs/balancer.md
// shows, in front of three reference-app nodes: users stay on the node
// that holds their session, and when a node stops, its users go to one of
// its backups while the others stay where they are.
func TestNginx_routeTag(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(map[bool]string{false: "__Host-session", true: "session"}[plain], func(t *testing.T) {
			plainCookie = plain
			t.Cleanup(func() { plainCookie = false })
			testNginxRouteTag(t)
		})
	}
}

func testNginxRouteTag(t *testing.T) {
	nginx := testenv.Command(t, "nginx")
	n1, n2, n3 := refNode(t, "n1"), refNode(t, "n2"), refNode(t, "n3")
	dir := t.TempDir()
	listen := freeAddr(t)
	var cfg bytes.Buffer
	template.Must(template.New("").Parse(nginxConfig)).Execute(&cfg, map[string]string{"Dir": dir, "Listen": listen,
		"N1": n1.Listener.Addr().String(), "N2": n2.Listener.Addr().String(), "N3": n3.Listener.Addr().String()})
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, cfg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-t", "-p", dir, "-c", file).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\n%s", err, out, cfg.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &lockedBuffer{}
	cmd := exec.CommandContext(ctx, nginx, "-p", dir, "-c", file)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	waitListening(t, listen, stderr)

	base := "http://" + listen
	users := checkSticky(t, base)

	// n2 stops: its users go to a backup, n1 or n3 (nginx balances over
	// an upstream's backups round-robin; with in-memory sessions they must
	// log in again there); the others do not move.
	n2.Close()
	for cookie, home := range users {
		resp := call(t, "GET", base+"/cart", "", cookie)
		got := resp.Header.Get("X-Node")
		switch {
		case home != "n2" && got != home:
			t.Errorf("user of %s after n2 stopped: answered by %q (status %d); want %s", home, got, resp.StatusCode, home)
		case home == "n2" && got != "n1" && got != "n3":
			t.Errorf("user of n2 after n2 stopped: answered by %q (status %d); want n1 or n3", got, resp.StatusCode)
		}
	}
	if strings.Contains(stderr.String(), "[emerg]") {
		t.Errorf("nginx: %s", stderr)
	}
}
