package balancer

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A node's session IDs carry its route tag, and the balancer sends each
// request to the backend named by that tag: a backend must be named after
// its node's tag (sessionkit serve --node, session.Config.Route). When it
// is not (backends x1, x2, x3 in front of nodes started as node1, node2,
// node3), a tag names no backend and every user is placed by hashing on
// each request: with in-memory sessions most are logged out at once, with
// nothing in the log. The balancer sees it in the answers: a node sets the
// session cookie to an ID tagged with its own route, always, even for a
// session it took over from another node, which it re-tags for itself (as
// Tomcat's JvmRouteBinderValve does for jvmRoute). So a Set-Cookie of
// backend x1 tagged node1 means that x1's route tag is node1.
//
// The balancer then logs it once per node and tag (with the fix), reports
// every such answer to Observer.RouteTagMismatch, and, when the tag names
// no backend, learns it: requests tagged node1 go to x1 from then on. A
// tag that names another backend is not learned (that backend's name
// wins), only reported.

// sawSessionCookie checks the route tag of the session cookie that node n
// set in its answer, line being the Set-Cookie header's value.
func (b *Balancer) sawSessionCookie(n *node, line string) {
	tag, ok := setCookieTag(line)
	if !ok {
		return
	}
	if tag == n.name {
		if n.tag.Load() != nil {
			b.learnTag(n, "") // the node was renamed: it tags its IDs with its backend name now
		}
		return
	}
	if b.obs != nil {
		b.obs.RouteTagMismatch(n.name, tag)
	}
	if p := n.tag.Load(); p == nil || *p != tag {
		b.learnTag(n, tag)
	}
}

// setCookieTag returns the route tag of the session ID that line, the value
// of a Set-Cookie header for the session cookie, sets; false if it sets no
// routed ID or expires the cookie.
func setCookieTag(line string) (string, bool) {
	_, rest, _ := strings.Cut(line, "=")
	v, attrs, _ := strings.Cut(rest, ";")
	_, tag, ok := parseRouted(unquote(strings.TrimSpace(v)))
	if !ok || expires(attrs) {
		return "", false
	}
	return tag, true
}

// expires reports whether a Set-Cookie line's attributes delete the
// cookie: Max-Age 0 or less or, without Max-Age (which wins, RFC 6265
// 5.3), an Expires date in the past.
func expires(attrs string) bool {
	maxAge, hasMaxAge, past := 0, false, false
	for attrs != "" {
		var a string
		a, attrs, _ = strings.Cut(attrs, ";")
		k, v, _ := strings.Cut(strings.TrimSpace(a), "=")
		v = strings.TrimSpace(v)
		switch {
		case strings.EqualFold(k, "Max-Age"):
			if age, err := strconv.Atoi(v); err == nil {
				maxAge, hasMaxAge = age, true
			}
		case strings.EqualFold(k, "Expires"):
			if t, err := http.ParseTime(v); err == nil {
				past = t.Before(time.Now())
			}
		}
	}
	if hasMaxAge {
		return maxAge <= 0
	}
	return past
}

// learnTag records that node n tags its session IDs with tag ("" for its
// own name), so that requests with that tag go to n when it names no
// backend, and logs it. A tag is learned for one node at a time: the last
// that set it.
func (b *Balancer) learnTag(n *node, tag string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.set.Load()
	if !slices.Contains(set.list, n) {
		return // removed meanwhile
	}
	old := ""
	if p := n.tag.Load(); p != nil {
		old = *p
	}
	if old == tag {
		return // another request learned it first
	}
	log := b.cfg.Logger
	if tag == "" {
		n.tag.Store(nil)
		b.set.Store(newNodeSet(set.list))
		log.Info("balancer: node "+n.name+" now tags its session IDs with its backend name", "node", n.name, "previous_tag", old)
		return
	}
	n.tag.Store(&tag)
	if other := set.byName[tag]; other != nil {
		b.set.Store(newNodeSet(set.list)) // n's earlier tag, if any, is no longer learned
		log.Warn("balancer: route tag mismatch: node "+n.name+" tags its session IDs "+tag+
			", the name of another backend, so its users' requests go to "+tag+", not to "+n.name+
			"; fix: name each backend after its node's route tag (the node's serve --node, or session.Config.Route)",
			"node", n.name, "tag", tag)
		return
	}
	for _, o := range set.list {
		if p := o.tag.Load(); o != n && p != nil && *p == tag {
			o.tag.Store(nil) // the tag moved to n
		}
	}
	b.set.Store(newNodeSet(set.list))
	log.Warn("balancer: route tag mismatch: node "+n.name+" tags its session IDs "+tag+", which names no backend; "+
		"requests tagged "+tag+" now go to "+n.name+" (learned from its answers: another balancer, or this one after "+
		"a restart, places them by hashing until it sees one); fix: name the backend "+tag+" (--backend "+tag+
		"=URL) or start the node as "+n.name+" (serve --node "+n.name+")",
		"node", n.name, "tag", tag)
}
