package sessiontrace

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
)

// ScopeName is the instrumentation scope of the tracers this package uses.
const ScopeName = "github.com/sessionkit/sessionkit/sessiontrace"

// Span names. Store spans are named StoreSpanPrefix followed by the
// operation: "sessionkit.store.load", "sessionkit.store.save", ...
const (
	SessionSpanName = "sessionkit.session"
	StoreSpanPrefix = "sessionkit.store."
	// EventPrefix starts the names of the span events Events adds:
	// "sessionkit.session.created", ...
	EventPrefix = "sessionkit.session."
)

// Attribute keys set by this package, besides the HTTP semantic
// conventions' http.request.method, url.path and http.route.
const (
	// AttrStoreOp is the store operation: one of the store.OpName constants.
	AttrStoreOp = attribute.Key("sessionkit.store.op")
	// AttrStoreResult is how the store call ended: one of the Result
	// constants.
	AttrStoreResult = attribute.Key("sessionkit.store.result")
	// AttrEventCount is session.Event.Count, on the events that have one
	// (user_revoked, conflict_retried, conflict_gave_up).
	AttrEventCount = attribute.Key("sessionkit.session.count")
)

// Values of AttrStoreResult: store.Result's. ResultOutage and
// ResultUnavailable are the only ones that mark the span as an error.
const (
	ResultOK          = store.ResultOK
	ResultNotFound    = store.ResultNotFound
	ResultConflict    = store.ResultConflict
	ResultInvalidKey  = store.ResultInvalidKey
	ResultUnsupported = store.ResultUnsupported
	ResultClosed      = store.ResultClosed
	ResultCanceled    = store.ResultCanceled
	ResultUnavailable = store.ResultUnavailable
	ResultOutage      = store.ResultOutage
)

const (
	attrHTTPMethod = attribute.Key("http.request.method")
	attrURLPath    = attribute.Key("url.path")
	attrHTTPRoute  = attribute.Key("http.route")
)

func tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(ScopeName)
}

// Store returns s with a span around every Load, Save, Delete, Touch,
// ListUser and DeleteUser: a child of the span in the call's context, named
// StoreSpanPrefix + op, of kind Client, with attributes AttrStoreOp and
// AttrStoreResult. The store sees the span's context, so spans its own
// client library makes are children of it. A nil tp means
// otel.GetTracerProvider() at the time of the call to Store.
//
// The result implements exactly the optional interfaces of s
// (store.Toucher, store.UserIndex, store.Notifier); Subscribe and Close are
// not traced. Keys, user IDs and records never reach the spans.
func Store(s store.Store, tp trace.TracerProvider) store.Store {
	tr := tracer(tp)
	return store.Intercept(s, func(ctx context.Context, op string, call func(context.Context) error) error {
		ctx, span := tr.Start(ctx, StoreSpanPrefix+op,
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(AttrStoreOp.String(op)))
		defer span.End()
		err := call(ctx)
		span.SetAttributes(AttrStoreResult.String(store.Result(ctx, err)))
		if store.IsOutage(ctx, err) {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return err
	})
}

// Middleware returns middleware that runs each request in a span named
// SessionSpanName, of kind Internal, a child of the span in the request's
// context. Wrap Manager.Handler with it, not the other way round:
//
//	sessiontrace.Middleware(tp)(m.Handler(app))
//
// so that the store spans of the request, made inside Manager.Handler, are
// children of the session span. The span carries the request's method and
// path (and route pattern, if a ServeMux routed the request before it),
// nothing else. A nil tp means otel.GetTracerProvider() at the time of the
// call to Middleware.
func Middleware(tp trace.TracerProvider) func(http.Handler) http.Handler {
	tr := tracer(tp)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			attrs := make([]attribute.KeyValue, 2, 3)
			attrs[0] = attrHTTPMethod.String(method(r.Method))
			attrs[1] = attrURLPath.String(r.URL.Path)
			if r.Pattern != "" {
				attrs = append(attrs, attrHTTPRoute.String(r.Pattern))
			}
			ctx, span := tr.Start(r.Context(), SessionSpanName,
				trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithAttributes(attrs...))
			defer span.End()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// method returns m if it is a standard method, else "_OTHER", as the HTTP
// semantic conventions ask, so that arbitrary client input never becomes an
// attribute value.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// Events is a session.Observer that adds a span event named EventPrefix +
// the event's kind ("sessionkit.session.created", "...renewed", ...) to the
// span in the event's context: with Middleware, the request's session span.
// Events without a recording span cost nothing. StoreCall does nothing:
// Store makes the store spans. The events carry AttrEventCount where the
// event has a count, degraded events the store's result (AttrStoreResult),
// and nothing that names a session or a user. The zero
// value is ready to use; set it as session.Config.Observer.
type Events struct{}

var _ session.Observer = Events{}

// SessionEvent implements session.Observer.
func (Events) SessionEvent(ctx context.Context, e session.Event) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	switch e.Kind {
	case session.EventUserRevoked, session.EventConflictRetried, session.EventConflictGaveUp:
		span.AddEvent(EventPrefix+e.Kind.String(), trace.WithAttributes(AttrEventCount.Int(e.Count)))
	case session.EventDegraded:
		span.AddEvent(EventPrefix+e.Kind.String(), trace.WithAttributes(AttrStoreResult.String(store.Result(ctx, e.Err))))
	default:
		span.AddEvent(EventPrefix + e.Kind.String())
	}
}

// StoreCall implements session.Observer. It does nothing.
func (Events) StoreCall(context.Context, session.StoreCall) {}
