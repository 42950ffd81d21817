package refapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestDecodeJSON(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		fields []string
		want   []string
		status int // 0: success
	}{
		{"one field", `{"user":"alice"}`, []string{"user"}, []string{"alice"}, 0},
		{"whitespace", " \n{ \"user\" : \"alice\" }\n ", []string{"user"}, []string{"alice"}, 0},
		{"escapes", `{"user":"al\u00efce \"A\""}`, []string{"user"}, []string{`alïce "A"`}, 0},
		{"two fields, any order", `{"b":"2","a":"1"}`, []string{"a", "b"}, []string{"1", "2"}, 0},
		{"exactly 256 bytes", `{"user":"` + strings.Repeat("é", 128) + `"}`, []string{"user"}, []string{strings.Repeat("é", 128)}, 0},
		{"one missing of two", `{"a":"1"}`, []string{"a", "b"}, nil, 400},
		{"257 bytes", `{"user":"` + strings.Repeat("é", 128) + `x"}`, []string{"user"}, nil, 400},
		{"trailing comma", `{"user":"alice",}`, []string{"user"}, nil, 400},
		{"truncated string", `{"user":"al`, []string{"user"}, nil, 400},
		{"truncated object", `{"user":"alice"`, []string{"user"}, nil, 400},
		{"huge number", `{"user":1e999}`, []string{"user"}, nil, 400},
		{"nested", `{"user":["a"]}`, []string{"user"}, nil, 400},
		{"only whitespace", "  \n ", []string{"user"}, nil, 400},
		{"NUL escape", `{"user":"a\u0000"}`, []string{"user"}, nil, 400},
		{"raw newline", "{\"user\":\"a\nb\"}", []string{"user"}, nil, 400},
		{"BOM", "\ufeff{\"user\":\"alice\"}", []string{"user"}, nil, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(tc.body, tc.fields...)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("got error %v; want %q", err, tc.want)
				}
				if strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
					t.Fatalf("got %q; want %q", got, tc.want)
				}
				return
			}
			re, ok := errors.AsType[*requestError](err)
			if !ok || re.status != tc.status {
				t.Fatalf("got %q, %v; want a %d error", got, err, tc.status)
			}
		})
	}
}

func decode(body string, fields ...string) ([]string, error) {
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	return decodeJSON(httptest.NewRecorder(), r, fields...)
}

// FuzzDecodeJSON drives the decoding of request bodies with arbitrary
// input: it never panics, every failure is a 400 or 413 with a short
// message, and every success is a JSON object whose values pass checkText.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"user":"alice"}`, `{"user":""}`, `{"user":1}`, `{"user":null}`, `{}`, `[]`, ``, `{"user":"a"} x`,
		`{"user":"a","user":"b"}`, `{"user":"a\u0001"}`, `{"user":"\ud800"}`, "{\"user\":\"\xff\"}",
		`{"item":"x"}`, `{"user":{"a":[1,2,{"b":null}]}}`, `{"user":"` + strings.Repeat("a", 300) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/login", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		vals, err := decodeJSON(w, r, "user")
		if err != nil {
			re, ok := errors.AsType[*requestError](err)
			if !ok {
				t.Fatalf("error %v (%T) is not a *requestError", err, err)
			}
			if re.status != http.StatusBadRequest && re.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d for %q; want 400 or 413", re.status, body)
			}
			if re.msg == "" || len(re.msg) > 200 || !utf8.ValidString(re.msg) {
				t.Fatalf("bad error message %q", re.msg)
			}
			return
		}
		if len(vals) != 1 {
			t.Fatalf("got %d values; want 1", len(vals))
		}
		v := vals[0]
		if v == "" || len(v) > MaxTextLen || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			t.Fatalf("accepted invalid value %q", v)
		}
		var obj map[string]any
		if err := json.Unmarshal(body, &obj); err != nil || len(obj) != 1 || obj["user"] != v {
			t.Fatalf("accepted %q as %q; encoding/json reads it as %v, %v", body, v, obj, err)
		}
		if len(body) > MaxBodyBytes {
			t.Fatalf("accepted a body of %d bytes", len(body))
		}
	})
}
