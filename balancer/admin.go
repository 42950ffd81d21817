package balancer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// NodeStatus is a node's state as Nodes and the admin API report it.
type NodeStatus struct {
	Name string `json:"name"`
	URL  string `json:"url"`

	// State is one of StateActive, StateDraining, StateDrained, StateDown,
	// StateEjected.
	State string `json:"state"`

	// Healthy reports whether the node passes its active health checks.
	Healthy bool `json:"healthy"`

	// LastCheck is "ok", the last failed check's error, or "" before the
	// first check.
	LastCheck string `json:"last_check,omitempty"`

	// DrainDeadline is when a draining node stops taking its sessions'
	// requests; nil when not draining.
	DrainDeadline *time.Time `json:"drain_deadline,omitempty"`

	// Sessions is approximate: the number of distinct affinity keys
	// (session IDs' random parts, or affinity cookies) seen on the node in
	// the last Config.SessionWindow/2 to SessionWindow.
	Sessions int `json:"sessions"`

	// InFlight is the number of requests being proxied to the node.
	InFlight int64 `json:"in_flight"`
}

// Nodes returns the status of every node, in the order they were added.
func (b *Balancer) Nodes() []NodeStatus {
	nowT := b.cfg.Now()
	now := nowT.UnixNano()
	set := b.set.Load()
	out := make([]NodeStatus, 0, len(set.list))
	for _, n := range set.list {
		n.checkMu.Lock()
		last := n.lastCheck
		n.checkMu.Unlock()
		st := NodeStatus{
			Name: n.name, URL: n.url.String(), State: n.state(now), Healthy: n.up.Load(), LastCheck: last,
			Sessions: n.sessions.count(now, b.cfg.SessionWindow), InFlight: n.inflight.Load(),
		}
		if d := n.drainDeadline.Load(); d != 0 {
			t := time.Unix(0, d).UTC()
			st.DrainDeadline = &t
		}
		out = append(out, st)
	}
	return out
}

// AddNode adds a node at runtime. It takes new sessions at once (it is
// presumed healthy until its checks say otherwise), and by rendezvous
// hashing only the share of re-homed and new sessions that now score
// highest on it moves to it. It fails with ErrNodeExists or ErrConfig.
func (b *Balancer) AddNode(be Backend) error {
	n, err := b.newNode(be)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return ErrClosed
	}
	set := b.set.Load()
	if _, ok := set.byName[n.name]; ok {
		return fmt.Errorf("%w: %s", ErrNodeExists, n.name)
	}
	delete(b.removed, n.name)
	if b.obs != nil {
		b.obs.NodeAdded(n.name) // before any request can reach it
	}
	b.set.Store(newNodeSet(append(slices.Clip(set.list), n)))
	b.cfg.Logger.Info("balancer: node added", "node", n.name, "url", n.url.String())
	return nil
}

// RemoveNode removes a node at once: requests in flight finish, and its
// sessions are re-homed on their next request (counted as lost with
// in-memory sessions; drain the node first to avoid that). It fails with
// ErrNodeNotFound.
func (b *Balancer) RemoveNode(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.set.Load()
	n, ok := set.byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrNodeNotFound, name)
	}
	list := slices.DeleteFunc(slices.Clone(set.list), func(o *node) bool { return o == n })
	b.set.Store(newNodeSet(list))
	if len(b.removed) >= 4096 {
		clear(b.removed)
	}
	b.removed[name] = struct{}{}
	if p := n.tag.Load(); p != nil && set.byTag[*p] == n {
		b.removed[*p] = struct{}{} // its learned route tag: requests with it are re-homed as node_removed
	}
	if b.obs != nil {
		b.obs.NodeRemoved(name)
	}
	if b.fast != nil {
		b.fast.forget(n)
	}
	b.cfg.Logger.Info("balancer: node removed", "node", name)
	return nil
}

// Drain stops new sessions on the node; requests of its existing sessions
// still go to it until deadline, then they are re-homed. A zero deadline
// means Config.DrainTimeout from now. Draining a draining node moves its
// deadline. It fails with ErrNodeNotFound.
func (b *Balancer) Drain(name string, deadline time.Time) error {
	n, ok := b.set.Load().byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrNodeNotFound, name)
	}
	if deadline.IsZero() {
		deadline = b.cfg.Now().Add(b.cfg.DrainTimeout)
	}
	d := deadline.UnixNano()
	if d == 0 {
		d = 1 // 0 means "not draining"
	}
	n.drainDeadline.Store(d)
	switch state := n.state(b.cfg.Now().UnixNano()); state {
	case StateDraining, StateDrained:
		b.cfg.Logger.Info("balancer: node "+state, "node", name, "state", state, "deadline", deadline.UTC())
	default:
		b.cfg.Logger.Info("balancer: node set to drain; it serves its sessions until the deadline once "+outUntil(state),
			"node", name, "state", state, "deadline", deadline.UTC())
	}
	return nil
}

// Activate ends a node's draining: it takes new sessions again, once it is
// up (a node that is down or ejected stays out until its checks pass or
// its ejection ends). It fails with ErrNodeNotFound.
func (b *Balancer) Activate(name string) error {
	n, ok := b.set.Load().byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrNodeNotFound, name)
	}
	n.drainDeadline.Store(0)
	if state := n.state(b.cfg.Now().UnixNano()); state == StateActive {
		b.cfg.Logger.Info("balancer: node active", "node", name, "state", state)
	} else {
		b.cfg.Logger.Info("balancer: node re-admitted; it takes requests once "+outUntil(state), "node", name, "state", state)
	}
	return nil
}

// outUntil says what brings a node in state (down or ejected) back into
// the rotation, for the log.
func outUntil(state string) string {
	if state == StateEjected {
		return "its ejection ends or a health check passes"
	}
	return "its health checks pass"
}

// AdminHandler returns the admin API, JSON in and out. Serve it on a
// separate, private listener: it is not authenticated.
//
//	GET    /nodes                  -> [NodeStatus, ...]
//	POST   /nodes                  {"name":"n4","url":"http://10.0.0.4:8080"} -> 201 NodeStatus
//	DELETE /nodes/{name}           -> 200 {"removed":"n4"}
//	POST   /nodes/{name}/drain     optional {"timeout":"5m"} -> NodeStatus
//	POST   /nodes/{name}/activate  -> NodeStatus
//
// Errors are {"error":"..."} with 400 (bad JSON, invalid node), 404 (no
// such node or route), 405 (a method the path does not support; Allow
// lists those it does), 409 (the node exists) or 413 (a body over 64 KiB).
func (b *Balancer) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /nodes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Nodes())
	})
	mux.HandleFunc("POST /nodes", func(w http.ResponseWriter, r *http.Request) {
		var be Backend
		if !readJSON(w, r, &be, true, backendFields) {
			return
		}
		if err := b.AddNode(be); err != nil {
			writeErr(w, err)
			return
		}
		b.writeNode(w, http.StatusCreated, be.Name)
	})
	mux.HandleFunc("DELETE /nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := b.RemoveNode(name); err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"removed": name})
	})
	mux.HandleFunc("POST /nodes/{name}/drain", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Timeout string `json:"timeout"`
		}
		if !readJSON(w, r, &body, false, drainFields) {
			return
		}
		var deadline time.Time
		if body.Timeout != "" {
			d, err := time.ParseDuration(body.Timeout)
			if err != nil || d <= 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "timeout: want a positive duration such as 90s or 10m"})
				return
			}
			deadline = b.cfg.Now().Add(d)
		}
		name := r.PathValue("name")
		if err := b.Drain(name, deadline); err != nil {
			writeErr(w, err)
			return
		}
		b.writeNode(w, http.StatusOK, name)
	})
	mux.HandleFunc("POST /nodes/{name}/activate", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := b.Activate(name); err != nil {
			writeErr(w, err)
			return
		}
		b.writeNode(w, http.StatusOK, name)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			list := strings.Join(allow, ", ")
			w.Header().Set("Allow", list)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{
				"error": fmt.Sprintf("method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, list)})
			return
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such admin route; see GET /nodes"})
	})
	return mux
}

// adminMethods are the methods allowedMethods tries.
var adminMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// allowedMethods returns the methods that mux routes r's path to a handler
// other than its catch-all "/" with: none for an unknown path.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range adminMethods {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}

func (b *Balancer) writeNode(w http.ResponseWriter, code int, name string) {
	for _, st := range b.Nodes() {
		if st.Name == name {
			writeJSON(w, code, st)
			return
		}
	}
	writeErr(w, fmt.Errorf("%w: %q", ErrNodeNotFound, name))
}

const maxAdminBody = 64 << 10

// What the fields of the admin API's JSON bodies must be, for the answer
// to a value of the wrong type.
var (
	backendFields = map[string]string{"name": `a string such as "n4"`, "url": `a string such as "http://10.0.0.4:8080"`}
	drainFields   = map[string]string{"timeout": `a duration string such as "30s"`}
)

// readJSON decodes one JSON object from r's body into v; an empty body is
// accepted unless required. fields says what each of v's fields must be.
// It answers the error itself and returns false.
func readJSON(w http.ResponseWriter, r *http.Request, v any, required bool, fields map[string]string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	switch {
	case err == nil:
		return true
	case !required && errors.Is(err, io.EOF):
		return true
	}
	code := http.StatusBadRequest
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		code = http.StatusRequestEntityTooLarge
	}
	writeJSON(w, code, map[string]string{"error": "bad JSON body: " + jsonError(err, fields)})
	return false
}

// jsonError describes a decoding error in the API's terms: a value of the
// wrong type is named by its field and what it must be (fields), never by
// the Go types it was decoded into.
func jsonError(err error, fields map[string]string) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return "want a JSON object, not " + article(te.Value)
		}
		if want, ok := fields[te.Field]; ok {
			return fmt.Sprintf("%q must be %s", te.Field, want)
		}
		return fmt.Sprintf("%q cannot be %s", te.Field, article(te.Value))
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// article returns a JSON value kind as UnmarshalTypeError names it
// ("number", "array") with its indefinite article.
func article(kind string) string {
	if strings.HasPrefix(kind, "a") || strings.HasPrefix(kind, "o") {
		return "an " + kind
	}
	return "a " + kind
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, ErrNodeNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrNodeExists):
		code = http.StatusConflict
	case errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client is gone
}
