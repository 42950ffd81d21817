package bench

// Benchmarks on the networked stores: sessionkit with redisstore and
// pgstore beside scs with its redisstore and postgresstore, and beside a
// "floor": the same httptest harness with a handler that does, with no
// session library, the least any session handler on that store must do.
// Two workloads, each its own top-level benchmark:
//
//   - read+write (BenchmarkRedis, BenchmarkPostgres): the request reads
//     one value and writes another; the floor is one read and one write of
//     a small value.
//   - read only (BenchmarkRedisReadOnly, BenchmarkPostgresReadOnly): the
//     request reads one value, as GET /cart does; the floor is one read.
//
// Both sides run with the same timeouts: sessionkit's defaults (idle
// timeout 30 min, lifetime 12 h) and scs with IdleTimeout 30 min and
// Lifetime 12 h. With an idle timeout scs marks every loaded session
// modified and writes it back on every request (scs v2.9.0, data.go), to
// move its expiry; sessionkit writes an unchanged session only when its
// touch is due (session.Config.TouchInterval, by default a tenth of the
// idle timeout: at most once every 3 minutes per session, and never within
// these runs, which use fresh sessions).
//
// On Redis, impl=sessionkit-nearcache is sessionkit with redisstore's
// near cache: its read-only request is served from the node's memory (the
// session was read or written by this node before), its read+write
// request sends one script call.
//
// rueidis sends a lone call from the caller's goroutine until a
// connection first sees overlapping calls; from then on it pipelines that
// connection through a writer and a reader goroutine, for good. The conc=1
// runs of the stores above have seen nothing else; impl=sessionkit-pipelined
// and sessionkit-nearcache-pipelined are the same stores after overlapping
// calls, the state of a server that has served concurrent requests.
//
// Sub-benchmarks are named conc=N/impl=X, so that `benchstat -col /impl`
// puts the impls side by side with one row per concurrency.
//
// conc=1 is one session used by one goroutine (b.Loop); conc=16 and
// conc=64 are 16 and 64 goroutines (b.RunParallel with
// SetParallelism(ceil(N/GOMAXPROCS))),
// each with its own session, made before the timer starts: many users, not
// one hot session, so no run measures compare-and-set retries.
//
// Sessions are anonymous (the login handler sets a "user" value and never
// calls Session.Login), so that sessionkit does what scs does: one read
// and one write per request, with no user index to maintain.
//
// Services come from SESSIONKIT_REDIS_ADDR and SESSIONKIT_POSTGRES_URL
// (defaults 127.0.0.1:6379 and the local trust-auth PostgreSQL). A missing
// service skips the benchmark with the reason (and fails it in CI, as every
// test of the project does, through internal/testenv). Every top-level run
// writes under a fresh Redis key prefix or into fresh PostgreSQL tables,
// and removes them at the end.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/postgresstore"
	scsredis "github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	redigo "github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/pgstore"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

const (
	// highConc is the number of goroutines of the concurrent runs.
	highConc = 64

	// pgPoolSize is the size of every PostgreSQL pool: pgxpool's MaxConns
	// (sessionkit and the floor) and sql.DB's MaxOpenConns and
	// MaxIdleConns (scs).
	pgPoolSize = 16

	// redigoMaxIdle is the idle size of scs's redigo pool, with MaxActive
	// 0 (no bound on open connections): every goroutine keeps its own
	// connection, so the pool is never what scs waits for.
	redigoMaxIdle = 128

	// sessionTTL is the expiry the floors write, as sessionkit's default
	// idle timeout.
	sessionTTL = 30 * time.Minute

	floorCookie = "floor"

	// setupTimeout bounds the setup of a benchmark (connecting, creating
	// tables, opening the pools' connections); it normally takes well
	// under a second. Service checks have their own 2 s bound.
	setupTimeout = 30 * time.Second
)

// floorValue is what the floors write: about the size of a small session
// (a user and a counter), starting with the user name the harness checks.
var floorValue = []byte("alice" + strings.Repeat("-", 55))

// parallelism returns the argument of b.SetParallelism that runs at least
// conc goroutines, and the number of goroutines it runs.
func parallelism(conc int) (p, goroutines int) {
	procs := runtime.GOMAXPROCS(0)
	p = (conc + procs - 1) / procs
	return p, p * procs
}

// uniqueName returns a fresh lower-case name for keys and tables.
func uniqueName() string {
	var b [6]byte
	rand.Read(b[:])
	return "skbench_" + hex.EncodeToString(b[:])
}

// managerStack is a session Manager on st, with its default timeouts,
// and the handlers of the workloads. visits is atomic: the handler runs
// concurrently.
func managerStack(b *testing.B, name string, st store.Store) stack {
	m, err := session.New(session.Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	var visits atomic.Int64
	return stack{
		name: name,
		readWrite: m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := session.From(r)
			user, _ := session.Value[string](s, "user")
			s.Set("visits", visits.Add(1))
			w.Write([]byte(user))
		})),
		readOnly: m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, _ := session.Value[string](session.From(r), "user")
			w.Write([]byte(user))
		})),
		// Anonymous: Set, not Login (see the top of the file).
		login: m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			session.From(r).Set("user", "alice")
		})),
	}
}

// sessionkitStacks returns sessionkit on st behind breaker.Wrap with the
// default breaker configuration (as it normally runs), and without.
func sessionkitStacks(b *testing.B, st store.Store) []stack {
	br, err := breaker.New(breaker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	return []stack{
		managerStack(b, "sessionkit", breaker.Wrap(st, br)),
		managerStack(b, "sessionkit-nobreaker", st),
	}
}

// scsManagerStack is scs on st, with the timeouts of sessionkit's
// defaults, and the handlers of the workloads.
func scsManagerStack(st scs.Store) stack {
	sm := scs.New()
	sm.Store = st
	sm.IdleTimeout = session.DefaultIdleTimeout
	sm.Lifetime = session.DefaultLifetime
	var visits atomic.Int64
	return stack{
		name: "scs",
		readWrite: sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user := sm.GetString(r.Context(), "user")
			sm.Put(r.Context(), "visits", visits.Add(1))
			w.Write([]byte(user))
		})),
		readOnly: sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(sm.GetString(r.Context(), "user")))
		})),
		login: sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sm.Put(r.Context(), "user", "alice")
		})),
	}
}

// floorStack is the floor: get reads the value under a token and put
// writes one, with no session library. The login handler stores
// floorValue under a new random token and sets it as a cookie; the
// read-write handler reads the value under the cookie's token, writes
// floorValue back with a fresh expiry, and answers the user name; the
// read-only handler only reads.
func floorStack(get func(ctx context.Context, token string) ([]byte, error), put func(ctx context.Context, token string) error) stack {
	handler := func(write bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := r.Cookie(floorCookie)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			v, err := get(r.Context(), c.Value)
			if err == nil && len(v) < 5 {
				err = fmt.Errorf("value %q is too short", v)
			}
			if err == nil && write {
				err = put(r.Context(), c.Value)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Write(v[:5])
		})
	}
	return stack{
		name:      "floor",
		readWrite: handler(true),
		readOnly:  handler(false),
		login: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token := rand.Text()
			if err := put(r.Context(), token); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: floorCookie, Value: token})
		}),
	}
}

// serve runs one request with cookie through h and checks the answer.
func serve(h http.Handler, cookie string) error {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", cookie)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || w.Body.String() != "alice" {
		return fmt.Errorf("got %d %q; want 200 alice", w.Code, w.Body.String())
	}
	return nil
}

// login creates a session through s.login and returns its cookie.
func login(b *testing.B, s stack) string {
	w := httptest.NewRecorder()
	s.login.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	cs := w.Result().Cookies()
	if w.Code != 200 || len(cs) != 1 {
		b.Fatalf("%s: login answered %d %q with %d cookies; want 200 and 1 cookie", s.name, w.Code, w.Body.String(), len(cs))
	}
	return cs[0].Name + "=" + cs[0].Value
}

// workload picks the handler a benchmark measures.
type workload func(stack) http.Handler

func readWrite(s stack) http.Handler { return s.readWrite }
func readOnly(s stack) http.Handler  { return s.readOnly }

// benchStores runs the handler of every stack that work picks at conc=1,
// 16 and 64, each goroutine on its own session.
func benchStores(b *testing.B, stacks []stack, work workload) {
	p, goroutines := parallelism(highConc)
	cookies := make([][]string, len(stacks))
	for i, s := range stacks {
		for range goroutines {
			cookies[i] = append(cookies[i], login(b, s))
		}
	}
	for _, conc := range []int{1, 16, highConc} {
		for i, s := range stacks {
			b.Run(fmt.Sprintf("conc=%d/impl=%s", conc, s.name), func(b *testing.B) {
				if conc == 1 {
					run(b, work(s), cookies[i][0])
					return
				}
				b.ReportAllocs()
				b.SetParallelism(p)
				var next atomic.Int64
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					// One session per goroutine (modulo only if -cpu
					// changed GOMAXPROCS after the cookies were made).
					cookie := cookies[i][int(next.Add(1)-1)%len(cookies[i])]
					for pb.Next() {
						if err := serve(work(s), cookie); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// ---- Redis ----

// BenchmarkRedis: the read-write request on Redis. impl=floor is a GET and
// a SET with PX through a rueidis client, redisstore's client library.
// scs runs on redigo with a pool of redigoMaxIdle idle connections and no
// limit on open ones, warmed up before the timer starts.
func BenchmarkRedis(b *testing.B) {
	if stacks := redisStacks(b); stacks != nil {
		benchStores(b, stacks, readWrite)
	}
}

// BenchmarkRedisReadOnly: the read-only request on Redis. impl=floor is
// one GET; scs, with its idle timeout, also writes the session back.
func BenchmarkRedisReadOnly(b *testing.B) {
	if stacks := redisStacks(b); stacks != nil {
		benchStores(b, stacks, readOnly)
	}
}

// redisStacks sets up the Redis stacks, under a fresh key prefix that is
// removed when b ends. It returns nil if there is no Redis (b is then
// skipped, or failed in CI).
func redisStacks(b *testing.B) []stack {
	addr := testenv.TCPAddr(b, "SESSIONKIT_REDIS_ADDR", redisstore.DefaultAddr)
	if addr == "" {
		return nil
	}
	prefix := uniqueName() + ":"
	_, goroutines := parallelism(highConc)

	// The floor's client, also used to delete the run's keys at the end.
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		testenv.Missing(b, fmt.Sprintf("redis at %s: %v", addr, err))
		return nil
	}
	b.Cleanup(c.Close)
	b.Cleanup(func() { deleteRedisKeys(b, c, prefix) })
	floorKey := prefix + "floor:"
	floor := floorStack(
		func(ctx context.Context, token string) ([]byte, error) {
			return c.Do(ctx, c.B().Get().Key(floorKey+token).Build()).AsBytes()
		},
		func(ctx context.Context, token string) error {
			return c.Do(ctx, c.B().Set().Key(floorKey+token).Value(rueidis.BinaryString(floorValue)).Px(sessionTTL).Build()).Error()
		})

	ctx, cancel := context.WithTimeout(b.Context(), setupTimeout)
	defer cancel()
	rs, err := redisstore.New(ctx, redisstore.Config{Addrs: []string{addr}, KeyPrefix: prefix + "sk:"})
	if err != nil {
		b.Fatalf("redisstore: %v", err)
	}
	b.Cleanup(func() { rs.Close() })

	pool := &redigo.Pool{
		MaxIdle:   redigoMaxIdle,
		MaxActive: 0,
		Dial: func() (redigo.Conn, error) {
			return redigo.Dial("tcp", addr, redigo.DialConnectTimeout(2*time.Second))
		},
	}
	b.Cleanup(func() { pool.Close() })
	// Open one connection per goroutine now, outside the timings.
	conns := make([]redigo.Conn, goroutines)
	for i := range conns {
		conns[i] = pool.Get()
		if _, err := conns[i].Do("PING"); err != nil {
			b.Fatalf("redigo: %v", err)
		}
	}
	for _, cn := range conns {
		cn.Close()
	}

	// sessionkit with a near cache (redisstore.Config.NearCache), behind
	// the breaker as serve runs it: a warm read sends nothing, a
	// read+write one EVALSHA.
	nc, err := redisstore.New(ctx, redisstore.Config{Addrs: []string{addr}, KeyPrefix: prefix + "nc:",
		NearCache: &redisstore.NearCache{}})
	if err != nil {
		b.Fatalf("redisstore with a near cache: %v", err)
	}
	b.Cleanup(func() { nc.Close() })
	br, err := breaker.New(breaker.Config{})
	if err != nil {
		b.Fatal(err)
	}

	// The same two stores again, after overlapping calls: rueidis then
	// pipelines their connection for good, and a lone call goes through
	// its writer and reader goroutines. conc=1 on the stores above, which
	// have only seen calls one at a time, is its synchronous path; a
	// server that has served overlapping requests is in this state.
	var piped []stack
	for _, c := range []struct {
		name string
		cfg  redisstore.Config
	}{
		{"sessionkit-pipelined", redisstore.Config{Addrs: []string{addr}, KeyPrefix: prefix + "skp:"}},
		{"sessionkit-nearcache-pipelined", redisstore.Config{Addrs: []string{addr}, KeyPrefix: prefix + "ncp:",
			NearCache: &redisstore.NearCache{}}},
	} {
		st, err := redisstore.New(ctx, c.cfg)
		if err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		b.Cleanup(func() { st.Close() })
		overlap(b, st)
		piped = append(piped, managerStack(b, c.name, breaker.Wrap(st, br)))
	}

	stacks := []stack{floor}
	stacks = append(stacks, sessionkitStacks(b, rs)...)
	stacks = append(stacks, managerStack(b, "sessionkit-nearcache", breaker.Wrap(nc, br)))
	stacks = append(stacks, piped...)
	return append(stacks, scsManagerStack(scsredis.NewWithPrefix(pool, prefix+"scs:")))
}

// overlap sends st 64 overlapping Loads of a missing key, 10 times.
func overlap(b *testing.B, st store.Store) {
	for range 10 {
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				if _, err := st.Load(b.Context(), "absent"); !errors.Is(err, store.ErrNotFound) {
					b.Errorf("overlapping load: %v", err)
				}
			})
		}
		wg.Wait()
	}
}

// deleteRedisKeys deletes every key starting with prefix, with SCAN and
// UNLINK.
func deleteRedisKeys(b *testing.B, c rueidis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			b.Errorf("cleanup: scan %s*: %v", prefix, err)
			return
		}
		if len(e.Elements) > 0 {
			if err := c.Do(ctx, c.B().Unlink().Key(e.Elements...).Build()).Error(); err != nil {
				b.Errorf("cleanup: unlink: %v", err)
				return
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return
		}
	}
}

// ---- PostgreSQL ----

const (
	postgresURLEnv     = "SESSIONKIT_POSTGRES_URL"
	postgresDefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

// scsSchema is the table scs's postgresstore documents, under the name %[1]s.
// The floor uses the same table.
const scsSchema = `CREATE TABLE %[1]s (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL);
CREATE INDEX %[1]s_expiry_idx ON %[1]s (expiry)`

// BenchmarkPostgres: the read-write request on PostgreSQL. sessionkit
// (pgstore) and the floor share one pgxpool, scs has a database/sql pool
// over pgx's stdlib driver; both pools hold pgPoolSize connections, opened
// before the timer starts, and both drivers cache prepared statements.
// impl=floor is one SELECT by primary key and one UPDATE on a table laid
// out as scs's. Neither store sweeps expired rows during the run.
func BenchmarkPostgres(b *testing.B) {
	if stacks := postgresStacks(b); stacks != nil {
		benchStores(b, stacks, readWrite)
	}
}

// BenchmarkPostgresReadOnly: the read-only request on PostgreSQL.
// impl=floor is one SELECT; scs, with its idle timeout, also writes the
// session back (an INSERT ... ON CONFLICT DO UPDATE).
func BenchmarkPostgresReadOnly(b *testing.B) {
	if stacks := postgresStacks(b); stacks != nil {
		benchStores(b, stacks, readOnly)
	}
}

// postgresStacks sets up the PostgreSQL stacks, on fresh tables that are
// dropped when b ends. It returns nil if there is no PostgreSQL (b is then
// skipped, or failed in CI).
func postgresStacks(b *testing.B) []stack {
	url := os.Getenv(postgresURLEnv)
	if url == "" {
		url = postgresDefaultURL
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatalf("%s: %v", postgresURLEnv, err)
	}
	cfg.MaxConns = pgPoolSize
	ctx, cancel := context.WithTimeout(b.Context(), setupTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatalf("pgxpool: %v", err)
	}
	b.Cleanup(pool.Close)
	pingCtx, cancelPing := context.WithTimeout(ctx, 2*time.Second)
	err = pool.Ping(pingCtx)
	cancelPing()
	if err != nil {
		testenv.Missing(b, fmt.Sprintf("no PostgreSQL at %s:%d (set %s): %v", cfg.ConnConfig.Host, cfg.ConnConfig.Port, postgresURLEnv, err))
		return nil
	}

	name := uniqueName()
	skTable, scsTable, floorTable := name+"_sk", name+"_scs", name+"_floor"
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS "+skTable+", "+scsTable+", "+floorTable); err != nil {
			b.Errorf("cleanup: %v", err)
		}
	})
	for _, t := range []string{scsTable, floorTable} {
		if _, err := pool.Exec(ctx, fmt.Sprintf(scsSchema, t)); err != nil {
			b.Fatalf("create table %s: %v", t, err)
		}
	}
	if err := pgstore.Migrate(ctx, pool, skTable); err != nil {
		b.Fatal(err)
	}
	ps, err := pgstore.New(ctx, pgstore.Config{Pool: pool, Table: skTable, CleanupInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ps.Close() })

	db := stdlib.OpenDB(*cfg.ConnConfig)
	db.SetMaxOpenConns(pgPoolSize)
	db.SetMaxIdleConns(pgPoolSize)
	b.Cleanup(func() { db.Close() })
	if err := warmPools(ctx, pool, db); err != nil {
		b.Fatalf("open the pools' connections: %v", err)
	}

	selectFloor := "SELECT data FROM " + floorTable + " WHERE token = $1 AND expiry > $2"
	updateFloor := "UPDATE " + floorTable + " SET data = $2, expiry = $3 WHERE token = $1"
	insertFloor := "INSERT INTO " + floorTable + " (token, data, expiry) VALUES ($1, $2, $3)"
	floor := floorStack(
		func(ctx context.Context, token string) ([]byte, error) {
			var data []byte
			err := pool.QueryRow(ctx, selectFloor, token, time.Now()).Scan(&data)
			return data, err
		},
		func(ctx context.Context, token string) error {
			tag, err := pool.Exec(ctx, updateFloor, token, floorValue, time.Now().Add(sessionTTL))
			if err == nil && tag.RowsAffected() == 0 {
				_, err = pool.Exec(ctx, insertFloor, token, floorValue, time.Now().Add(sessionTTL))
			}
			return err
		})

	stacks := []stack{floor}
	stacks = append(stacks, sessionkitStacks(b, ps)...)
	return append(stacks, scsManagerStack(postgresstore.NewWithConfig(db, postgresstore.Config{TableName: scsTable})))
}

// warmPools opens all pgPoolSize connections of both pools, so that no
// timing includes a connection's setup.
func warmPools(ctx context.Context, pool *pgxpool.Pool, db *sql.DB) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	hold := make(chan struct{})
	for range pgPoolSize {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c, err := pool.Acquire(ctx)
			if err != nil {
				fail(err)
				return
			}
			defer c.Release()
			<-hold
		}()
		go func() {
			defer wg.Done()
			c, err := db.Conn(ctx)
			if err == nil {
				err = c.PingContext(ctx)
			}
			if err != nil {
				fail(err)
				return
			}
			defer c.Close()
			<-hold
		}()
	}
	// Hold every connection until all are open, so that each goroutine
	// gets its own.
	for pool.Stat().AcquiredConns() < pgPoolSize || db.Stats().InUse < pgPoolSize {
		mu.Lock()
		failed := len(errs) > 0
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}
