package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// dialect is what differs between the SQL databases the store runs on.
// The queries are written once, for SQLite; rebind adapts them.
type dialect struct {
	name string
	// numbered rewrites ? placeholders as $1, $2, ... and drops
	// "COLLATE NOCASE" (PostgreSQL's columns carry a case-insensitive
	// collation of their own).
	numbered bool
	// conflict and missing recognise unique and foreign-key violations.
	conflict, missing func(error) bool
	migrations        []string
}

func (d *dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	q = strings.ReplaceAll(q, " COLLATE NOCASE", "")
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// sqlDB is a database handle that adapts every query to its dialect.
type sqlDB struct {
	*sql.DB
	d *dialect
	// gateway names this gateway in the audit rows it writes.
	gateway string
}

func (db *sqlDB) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return db.DB.ExecContext(ctx, db.d.rebind(q), args...)
}

func (db *sqlDB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.DB.QueryContext(ctx, db.d.rebind(q), args...)
}

func (db *sqlDB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return db.DB.QueryRowContext(ctx, db.d.rebind(q), args...)
}

func (db *sqlDB) begin(ctx context.Context) (*sqlTx, error) {
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &sqlTx{Tx: tx, d: db.d, gateway: db.gateway}, nil
}

// sqlTx is a transaction that adapts every query to its dialect.
type sqlTx struct {
	*sql.Tx
	d       *dialect
	gateway string
}

func (tx *sqlTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return tx.Tx.ExecContext(ctx, tx.d.rebind(q), args...)
}

func (tx *sqlTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return tx.Tx.QueryContext(ctx, tx.d.rebind(q), args...)
}

func (tx *sqlTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return tx.Tx.QueryRowContext(ctx, tx.d.rebind(q), args...)
}

// dialects are every dialect, for recognising their errors.
var dialects = []*dialect{sqliteDialect, postgresDialect}

func (tx *sqlTx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return tx.Tx.PrepareContext(ctx, tx.d.rebind(q))
}
