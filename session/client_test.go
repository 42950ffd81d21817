package session

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestClientLabel(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0":                                                                         "Firefox on Linux",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36":                                "Chrome on Windows",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70":              "Edge on Windows",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15":                          "Safari on macOS",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1":        "Safari on iOS",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1": "Chrome on iOS",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36":                      "Chrome on Android",
		"Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36":     "Samsung Internet on Android",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/114.0.0.0":                            "Opera on Linux",
		"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36":                                 "Chrome on ChromeOS",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36":                                  "Headless Chrome on Linux",
		"curl/8.5.0":                 "curl",
		"Go-http-client/1.1":         "Go",
		"python-requests/2.32.3":     "Python requests",
		"":                           "",
		"Mozilla/5.0 (compatible)":   "",
		"SomeApp/1.0 (Linux; arm64)": "a browser on Linux",
	} {
		if got := clientLabel(ua); got != want {
			t.Errorf("clientLabel(%q) = %q; want %q", ua, got, want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	for _, tt := range []struct {
		remote string
		c      ClientIP
		want   string
	}{
		{"203.0.113.77:5555", ClientIPOff, ""},
		{"203.0.113.77:5555", ClientIPTruncated, "203.0.113.0/24"},
		{"203.0.113.77:5555", ClientIPFull, "203.0.113.77"},
		{"[2001:db8:1:2:3:4:5:6]:443", ClientIPTruncated, "2001:db8:1::/48"},
		{"[::ffff:198.51.100.9]:443", ClientIPTruncated, "198.51.100.0/24"},
		{"[fe80::1%eth0]:443", ClientIPFull, "fe80::1"},
		{"garbage", ClientIPFull, ""},
	} {
		r.RemoteAddr = tt.remote
		if got := clientAddr(tt.c, nil, r); got != tt.want {
			t.Errorf("clientAddr(%v, %q) = %q; want %q", tt.c, tt.remote, got, tt.want)
		}
	}
}

// FuzzClientLabel: any User-Agent gives one of the fixed labels, and any
// address from Config.ClientAddr (which may come from a header) gives a
// valid address, network or nothing.
func FuzzClientLabel(f *testing.F) {
	f.Add("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	f.Add("curl/8.5.0")
	f.Add("203.0.113.7")
	f.Add("::ffff:1.2.3.4%zone")
	f.Fuzz(func(t *testing.T, s string) {
		label := clientLabel(s)
		if len(label) > 40 || strings.ContainsFunc(label, func(r rune) bool {
			return r != ' ' && (r < 'A' || r > 'Z') && (r < 'a' || r > 'z')
		}) {
			t.Fatalf("clientLabel(%q) = %q: not one of the fixed labels", s, label)
		}
		r := httptest.NewRequest("GET", "/", nil)
		for _, c := range []ClientIP{ClientIPTruncated, ClientIPFull} {
			got := clientAddr(c, func(*http.Request) string { return s }, r)
			if got == "" {
				continue
			}
			if _, err := netip.ParseAddr(got); err != nil {
				if _, err := netip.ParsePrefix(got); err != nil || c != ClientIPTruncated {
					t.Fatalf("clientAddr(%v, %q) = %q: neither an address nor a network", c, s, got)
				}
			}
		}
	})
}
