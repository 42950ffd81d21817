package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"text/template"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/strategy"
)

// Fronts Config.Fronts may name: the balancer in front of the nodes.
const (
	FrontSessionkit = "sessionkit" // sessionkit balance, a child process
	FrontHAProxy    = "haproxy"    // HAProxy, configured as docs/balancer.md shows
	FrontNginx      = "nginx"      // nginx, configured as docs/balancer.md shows
)

// frontProc is the front's process.
type frontProc struct {
	proc *process
	url  string // where the users send their requests
	// metrics is the front's Prometheus endpoint, or "" (HAProxy, nginx).
	metrics string
}

func (f *frontProc) stop() { f.proc.kill() }

// startFront starts the front named name in front of nodes: a route tag
// names its node (the slot's first name: a replacement's new name is
// unknown to HAProxy and nginx, which then balance its users as new ones;
// sessionkit's balancer learns it from the node's answers).
func startFront(ctx context.Context, cfg Config, name string, shared bool, nodes []*procNode, dir string) (*frontProc, error) {
	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, err
	}
	listen := addrs[0]
	type backend struct{ Name, Addr string }
	var backends []backend
	for _, nd := range nodes {
		backends = append(backends, backend{fmt.Sprintf("n%d", nd.slot+1), nd.addr})
	}
	var bin string
	var args []string
	f := &frontProc{url: "http://" + listen}
	switch name {
	case FrontSessionkit:
		bin = cfg.Binary
		f.metrics = "http://" + addrs[1] + "/metrics"
		// A killed node refuses connections: the balancer ejects it at
		// once (passive ejection). The checks, every 500 ms, bring it
		// back within a second of its restart; their timeout and fall
		// are balance's defaults, so that a busy node is not taken for a
		// dead one (and its in-memory users moved) on a loaded machine.
		args = []string{"balance", "--listen", listen, "--admin", addrs[1], "--log-level", "warn",
			"--health-interval", "500ms", "--health-rise", "1", "--eject-for", "1s"}
		if shared {
			args = append(args, "--shared-sessions")
		}
		for _, b := range backends {
			args = append(args, "--backend", b.Name+"=http://"+b.Addr)
		}
	case FrontHAProxy, FrontNginx:
		if bin, err = lookProgram(name); err != nil {
			return nil, err
		}
		file := filepath.Join(dir, name+".conf")
		var conf bytes.Buffer
		tmpl := haproxyConfig
		if name == FrontNginx {
			tmpl = nginxConfig
		}
		data := map[string]any{"Listen": listen, "Nodes": backends, "Dir": dir}
		if err := template.Must(template.New(name).Parse(tmpl)).Execute(&conf, data); err != nil {
			return nil, err
		}
		if err := os.WriteFile(file, conf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		args = []string{"-db", "-f", file}
		if name == FrontNginx {
			args = []string{"-p", dir, "-c", file}
		}
	default:
		return nil, fmt.Errorf("lab: unknown front %q", name)
	}
	if f.proc, err = startProcess(bin, args, filepath.Join(dir, "front-"+name+".log")); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if f.proc.exited() {
			return nil, f.proc.failure(name)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.stop()
			return nil, fmt.Errorf("%s not listening after %v; its log:\n%s", name, startTimeout, logTail(f.proc.log, 12))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f, nil
}

// lookProgram finds an installed program: on PATH, or in /usr/sbin, where
// Debian puts haproxy and nginx (and a non-root PATH may not reach). Its
// absence is a skip.
func lookProgram(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: %s is not installed (on Debian: apt-get install %s)", strategy.ErrSkip, name, name)
}

// haproxyConfig is the configuration docs/balancer.md shows (HAProxy reads
// the route tag after the '.' of the session cookie and sends the request
// to the server of that name; requests without one are balanced
// round-robin, a down server's users redispatched), with the lab's
// addresses and the health-check pace of the lab's sessionkit front
// (every 500 ms, 1 s to answer, down after 3 failures, up after 1 pass).
const haproxyConfig = `global
	maxconn 4096

defaults
	mode http
	timeout connect 2s
	timeout client 30s
	timeout server 30s
	timeout check 1s
	option redispatch

frontend app
	bind {{.Listen}}
	default_backend nodes

backend nodes
	balance roundrobin
	option httpchk GET /healthz
	http-request set-var(txn.sk_route) req.cook(__Host-session),field(2,.)
	http-request set-var(txn.sk_route) req.cook(session),field(2,.) unless { var(txn.sk_route) -m found }
{{range .Nodes}}	use-server {{.Name}} if { var(txn.sk_route) -m str {{.Name}} }
{{end}}{{range .Nodes}}	server {{.Name}} {{.Addr}} check inter 500ms fall 3 rise 1
{{end}}`

// nginxConfig is the http block docs/balancer.md shows (two maps from the
// session cookie's route tag to an upstream; each node's upstream lists
// the others as backups), for the lab's nodes, inside the few lines nginx
// needs to run as a child process.
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

    map $http_cookie $sk_route {
        "~(?:^|;\s*)__Host-session=[^;]*\.(?<tag>[A-Za-z0-9_-]{1,64})(?:;|$)" $tag;
        "~(?:^|;\s*)session=[^;]*\.(?<tag>[A-Za-z0-9_-]{1,64})(?:;|$)" $tag;
        default "";
    }
    map $sk_route $sk_upstream {
{{range .Nodes}}        {{.Name}} sk_{{.Name}};
{{end}}        default sk_all;
    }
{{$all := .Nodes}}{{range $n := .Nodes}}    upstream sk_{{$n.Name}} { server {{$n.Addr}};{{range $all}}{{if ne .Name $n.Name}} server {{.Addr}} backup;{{end}}{{end}} keepalive 32; }
{{end}}    upstream sk_all {{"{"}}{{range .Nodes}} server {{.Addr}};{{end}} keepalive 32; }

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
