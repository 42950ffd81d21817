package refapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
)

// Messages of the error answers that do not come from the request.
const (
	msgStore    = "session store unavailable"
	msgConflict = "session changed concurrently, retry"
	msgInternal = "internal error"
)

// ErrorHandler answers a request whose session could not be loaded or saved;
// use it as session.Config.ErrorHandler. It answers JSON:
//
//	503 {"error":"session store unavailable"}            for session.ErrStore
//	503 {"error":"session changed concurrently, retry"} for session.ErrTooManyConflicts
//	409 {"error":"too many sessions for this user ..."}  for session.ErrTooManySessions
//	413 {"error":"session too large for its token ..."}  for session.ErrTokenTooLarge
//	413 {"error":"session too large for the session store ..."} for store.ErrTooLarge
//	    (a store with an item size limit, such as Memcached's, or memstore's MaxBytes)
//	500 {"error":"internal error"}                        otherwise
//
// 413 is for the token strategy: the request asked the session to hold more
// than its token can carry (a cookie is limited to 4 KiB), and sending it
// again will not help; the answer gives the sizes.
//
// 503 answers carry Retry-After: session.RetryAfter(err) in seconds (an open
// circuit breaker's wait, or 1).
// The answer never contains err's text, which may carry details of the
// store. ErrorHandler does not log; NewErrorHandler returns one that does.
func ErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	retryAfter := strconv.Itoa(int(session.RetryAfter(err) / time.Second))
	switch {
	case errors.Is(err, store.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "session too large for the session store: keep less in it")
	case errors.Is(err, session.ErrStore):
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, msgStore)
	case errors.Is(err, session.ErrTooManyConflicts):
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, msgConflict)
	case errors.Is(err, session.ErrTooManySessions):
		writeError(w, http.StatusConflict, "too many sessions for this user: log out on another device first")
	case errors.Is(err, session.ErrTokenTooLarge):
		msg := "session too large for its token"
		if te, ok := errors.AsType[*session.TokenSizeError](err); ok {
			msg += fmt.Sprintf(" (%d bytes, over the limit of %d): keep less in it", te.Size, te.Limit)
		}
		writeError(w, http.StatusRequestEntityTooLarge, msg)
	default:
		writeError(w, http.StatusInternalServerError, msgInternal)
	}
}

// NewErrorHandler returns ErrorHandler preceded by logging the error to
// logger at level Error, with the request's method and path (never its
// session token). A nil logger logs nothing.
func NewErrorHandler(logger *slog.Logger) func(http.ResponseWriter, *http.Request, error) {
	if logger == nil {
		return ErrorHandler
	}
	return func(w http.ResponseWriter, r *http.Request, err error) {
		logger.Error("refapp: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ErrorHandler(w, r, err)
	}
}

// errorBody is the body of every error answer.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// writeJSON answers v as JSON. Answers depend on the session, so they are
// never stored by caches.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // unreachable: every answer is a plain struct
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n')) //nolint:errcheck // the client is gone; nothing to do
}
