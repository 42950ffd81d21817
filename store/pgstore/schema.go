package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxNamePart is the longest schema or table name accepted, so that the
// index names derived from the table name stay within PostgreSQL's 63-byte
// identifier limit.
const maxNamePart = 48

// parseTable splits table ("" for DefaultTable) into its optional schema and
// its name, and reports an error unless each is a valid name.
func parseTable(table string) (pgx.Identifier, error) {
	if table == "" {
		table = DefaultTable
	}
	parts := strings.Split(table, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("pgstore: invalid table %q: want name or schema.name", table)
	}
	for _, p := range parts {
		if err := checkName(p); err != nil {
			return nil, fmt.Errorf("pgstore: invalid table %q: %w", table, err)
		}
	}
	return pgx.Identifier(parts), nil
}

func checkName(p string) error {
	if p == "" {
		return errors.New("empty name")
	}
	if len(p) > maxNamePart {
		return fmt.Errorf("name %q is %d bytes, longer than %d", p, len(p), maxNamePart)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return fmt.Errorf("name %q: want lower-case ASCII letters, digits and underscores, not starting with a digit", p)
		}
	}
	return nil
}

func quoteTable(table string) (string, error) {
	id, err := parseTable(table)
	if err != nil {
		return "", err
	}
	return id.Sanitize(), nil
}

// SchemaSQL returns the SQL that Migrate runs for table (as Config.Table,
// "" for DefaultTable): the statements shown in the package documentation,
// with the names filled in, for a DBA to review or run by hand.
func SchemaSQL(table string) (string, error) {
	id, err := parseTable(table)
	if err != nil {
		return "", err
	}
	return schemaSQL(id), nil
}

func schemaSQL(id pgx.Identifier) string {
	t := id.Sanitize()
	name := id[len(id)-1]
	userIdx := pgx.Identifier{name + "_user_id_idx"}.Sanitize()
	expIdx := pgx.Identifier{name + "_expires_at_idx"}.Sanitize()
	return `CREATE TABLE IF NOT EXISTS ` + t + ` (
	key        bytea       PRIMARY KEY,
	data       bytea       NOT NULL,
	version    bigint      GENERATED ALWAYS AS IDENTITY,
	user_id    bytea,
	expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ` + userIdx + `
	ON ` + t + ` (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS ` + expIdx + `
	ON ` + t + ` (expires_at);
`
}

// Migrate creates the session table and its indexes, running SchemaSQL, if
// they do not exist yet. It is idempotent and safe to
// run from several processes at once: it runs in one transaction, serialized
// with a transaction-level advisory lock. It never alters nor drops an
// existing table. table is as Config.Table ("" for DefaultTable); a schema
// it names must exist.
func Migrate(ctx context.Context, pool *pgxpool.Pool, table string) error {
	if pool == nil {
		return errors.New("pgstore: migrate: pool is nil")
	}
	id, err := parseTable(table)
	if err != nil {
		return err
	}
	h := fnv.New64a()
	h.Write([]byte("sessionkit/pgstore migrate " + id.Sanitize()))
	lock := int64(h.Sum64())
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lock); err != nil {
			return err
		}
		// Without arguments pgx sends this with the simple protocol, which
		// runs the several statements in one round trip.
		_, err := tx.Exec(ctx, schemaSQL(id))
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: migrate %s: %w", id.Sanitize(), err)
	}
	return nil
}

// wantColumns are the columns of the table as Migrate creates it, with
// their types as format_type prints them.
var wantColumns = []struct{ name, typ string }{
	{"key", "bytea"},
	{"data", "bytea"},
	{"version", "bigint"},
	{"user_id", "bytea"},
	{"expires_at", "timestamp with time zone"},
}

// checkSchema checks, with one query, that table (quoted) exists and has the
// columns the store uses, with their types, and that version is an identity
// column. It returns an error wrapping ErrSchema if not.
func checkSchema(ctx context.Context, pool *pgxpool.Pool, table string) error {
	rows, err := pool.Query(ctx, `SELECT attname::text, format_type(atttypid, atttypmod), attidentity::text, attnotnull
		FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, table)
	if err != nil {
		return fmt.Errorf("pgstore: check table %s: %w", table, err)
	}
	type column struct {
		typ      string
		identity string
		notNull  bool
	}
	cols := make(map[string]column)
	var (
		name string
		c    column
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &c.typ, &c.identity, &c.notNull}, func() error {
		cols[name] = c
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgstore: check table %s: %w", table, err)
	}
	if len(cols) == 0 {
		return fmt.Errorf("%w: table %s does not exist (run pgstore.Migrate)", ErrSchema, table)
	}
	var problems []string
	for _, w := range wantColumns {
		got, ok := cols[w.name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("no column %s", w.name))
		case got.typ != w.typ:
			problems = append(problems, fmt.Sprintf("column %s is %s, want %s", w.name, got.typ, w.typ))
		case w.name == "version" && got.identity == "":
			problems = append(problems, "column version is not an identity column")
		case (w.name == "data" || w.name == "expires_at") && !got.notNull:
			problems = append(problems, fmt.Sprintf("column %s is nullable, want NOT NULL", w.name))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: table %s: %s", ErrSchema, table, strings.Join(problems, "; "))
	}
	return nil
}
