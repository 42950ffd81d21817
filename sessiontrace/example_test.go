package sessiontrace_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/sessiontrace"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// Tracing a Manager: the store wrapped with Store, events from Events, and
// Middleware outside Manager.Handler so that the store spans of a request
// are children of its session span. A real program would give the
// TracerProvider an exporter (OTLP, say) instead of a SpanRecorder.
func Example() {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())

	st, _ := memstore.New(memstore.Config{})
	defer st.Close()
	m, _ := session.New(session.Config{
		Store:    sessiontrace.Store(st, tp),
		Observer: sessiontrace.Events{},
	})
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Login("alice")
	})
	h := sessiontrace.Middleware(tp)(m.Handler(app))

	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/login", nil))

	names := map[trace.SpanID]string{}
	for _, s := range sr.Ended() {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	for _, s := range sr.Ended() {
		fmt.Print(s.Name())
		if p, ok := names[s.Parent().SpanID()]; ok {
			fmt.Print(" (child of ", p, ")")
		}
		for _, kv := range s.Attributes() {
			fmt.Printf(" %s=%s", kv.Key, kv.Value.String())
		}
		for _, e := range s.Events() {
			fmt.Print(" event:", e.Name)
		}
		fmt.Println()
	}
	// Output:
	// sessionkit.store.save (child of sessionkit.session) sessionkit.store.op=save sessionkit.store.result=ok
	// sessionkit.session http.request.method=POST url.path=/login event:sessionkit.session.created
}
