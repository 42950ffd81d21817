package refapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on requests.
const (
	// MaxBodyBytes is the largest request body accepted (413 above).
	MaxBodyBytes = 64 << 10
	// MaxTextLen is the longest user name or cart item, in bytes.
	MaxTextLen = 256
)

// requestError is a problem with the request, answered with its status and
// message. The message never contains more than a short, quoted excerpt of
// the request.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// decodeJSON reads the body of r as exactly one JSON object whose members
// are exactly fields, each once, each a string that passes checkText, and
// returns their values in the order of fields. The body is limited to
// MaxBodyBytes. Every error is a *requestError with status 400, 413 or
// 415. It never panics, whatever the body.
func decodeJSON(w http.ResponseWriter, r *http.Request, fields ...string) ([]string, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, &requestError{status: http.StatusUnsupportedMediaType,
				msg: "Content-Type must be application/json (with curl, use --json)"}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge,
				msg: fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)}
		}
		return nil, badRequest("could not read the request body")
	}
	return parseObject(body, fields)
}

// parseObject is decodeJSON once the body has been read.
func parseObject(body []byte, fields []string) ([]string, error) {
	example := exampleObject(fields)
	if !utf8.Valid(body) {
		return nil, badRequest("request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // any number is "not a string", never a range error
	tok, err := dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		return nil, badRequest("request body is empty; want a JSON object like %s", example)
	case err != nil:
		return nil, syntaxError(err)
	case tok != json.Delim('{'):
		return nil, badRequest("request body must be a JSON object like %s", example)
	}
	values := make([]string, len(fields))
	seen := make([]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		name, _ := tok.(string) // Token returns only strings in key position
		i := indexOf(fields, name)
		if i < 0 {
			return nil, badRequest("unknown field %s; want %s", quote(name), example)
		}
		if seen[i] {
			return nil, badRequest("duplicate field %q", name)
		}
		seen[i] = true
		tok, err = dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		s, ok := tok.(string)
		if !ok {
			return nil, badRequest("field %q must be a string, not %s", name, kindOf(tok))
		}
		if err := checkText(name, s); err != nil {
			return nil, err
		}
		values[i] = s
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, syntaxError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest("unexpected data after the JSON object")
	}
	for i, ok := range seen {
		if !ok {
			return nil, badRequest("missing field %q; want %s", fields[i], example)
		}
	}
	return values, nil
}

// checkText reports whether s is acceptable as a user name or cart item:
// non-empty, at most MaxTextLen bytes, valid UTF-8, no control characters.
func checkText(field, s string) error {
	switch {
	case s == "":
		return badRequest("field %q is empty", field)
	case len(s) > MaxTextLen:
		return badRequest("field %q is %d bytes long; at most %d", field, len(s), MaxTextLen)
	case !utf8.ValidString(s):
		return badRequest("field %q is not valid UTF-8", field)
	case strings.ContainsFunc(s, unicode.IsControl):
		return badRequest("field %q contains a control character", field)
	}
	return nil
}

func syntaxError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("malformed JSON: unexpected end of the body")
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return badRequest("malformed JSON at byte %d: %v", se.Offset, se)
	}
	return badRequest("malformed JSON")
}

func kindOf(tok json.Token) string {
	switch tok.(type) {
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	case json.Delim:
		if tok == json.Delim('[') {
			return "an array"
		}
		return "an object"
	}
	return "another type"
}

func indexOf(fields []string, name string) int {
	for i, f := range fields {
		if f == name {
			return i
		}
	}
	return -1
}

// quote quotes a name taken from the request, cut to a readable length.
func quote(s string) string {
	const limit = 40
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

// exampleObject returns a sample body for fields, for error messages.
func exampleObject(fields []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:\"...\"", f)
	}
	b.WriteByte('}')
	return b.String()
}
