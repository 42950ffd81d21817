package session

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP says whether, and how much of, the client's IP address a
// session keeps for Manager.UserSessions (see Config.ClientIP).
type ClientIP uint8

// ClientIP settings.
const (
	// ClientIPOff keeps no address: the default, since an IP address is
	// personal data that most device pages do without.
	ClientIPOff ClientIP = iota
	// ClientIPTruncated keeps the network: the first 24 bits of an IPv4
	// address, 48 of an IPv6 one ("203.0.113.0/24"), enough to tell a
	// country or a provider, not a household.
	ClientIPTruncated
	// ClientIPFull keeps the whole address.
	ClientIPFull
)

// clientAddr returns what c keeps of the address of r's client (see
// Config.ClientAddr), or "".
func clientAddr(c ClientIP, from func(*http.Request) string, r *http.Request) string {
	if c == ClientIPOff {
		return ""
	}
	raw := ""
	if from != nil {
		raw = from(r)
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		raw = host
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(raw))
	if err != nil {
		return ""
	}
	ip = ip.Unmap().WithZone("")
	if c == ClientIPFull {
		return ip.String()
	}
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// clientLabel names the client of a User-Agent header in a few words,
// "Firefox on Linux", for a device page; "" when it recognizes neither the
// browser nor the system. It is a deliberately small heuristic (the tokens
// the major browsers have sent for years, tested in the order that their
// User-Agents require: Edge and Opera also say "Chrome", Chrome also says
// "Safari"), not a User-Agent database: labels for a person to recognize a
// device by, never for a security decision. Any input is safe: the result
// is one of the fixed names below.
func clientLabel(ua string) string {
	if len(ua) > 512 { // the tokens are near the start; bound the scan
		ua = ua[:512]
	}
	browser := firstOf(ua,
		"Edg/", "Edge",
		"EdgA/", "Edge",
		"EdgiOS/", "Edge",
		"OPR/", "Opera",
		"Opera", "Opera",
		"SamsungBrowser/", "Samsung Internet",
		"YaBrowser/", "Yandex Browser",
		"Vivaldi/", "Vivaldi",
		"Firefox/", "Firefox",
		"FxiOS/", "Firefox",
		"CriOS/", "Chrome",
		"Chromium/", "Chromium",
		"HeadlessChrome/", "Headless Chrome",
		"Chrome/", "Chrome",
		"Version/", "Safari", // Safari's own version token; Chrome has none
		"curl/", "curl",
		"Wget/", "Wget",
		"python-requests/", "Python requests",
		"Go-http-client/", "Go",
		"okhttp/", "OkHttp",
		"PostmanRuntime/", "Postman",
	)
	if browser == "Safari" && !strings.Contains(ua, "Safari/") {
		browser = ""
	}
	system := firstOf(ua,
		"Windows NT", "Windows",
		"iPhone", "iOS",
		"iPad", "iPadOS",
		"Android", "Android",
		"CrOS", "ChromeOS",
		"Mac OS X", "macOS",
		"Macintosh", "macOS",
		"Linux", "Linux",
		"FreeBSD", "FreeBSD",
	)
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "":
		return browser
	case system != "":
		return "a browser on " + system
	}
	return ""
}

// firstOf returns the name that follows the first token of pairs (token,
// name, token, name, ...) that s contains, or "".
func firstOf(s string, pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.Contains(s, pairs[i]) {
			return pairs[i+1]
		}
	}
	return ""
}
