package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// copyTables are the store's tables, parents before children.
var copyTables = []string{"settings", "environments", "groups", "users", "memberships", "tunnels", "sessions", "audit"}

// Copy copies every row of src into dst, which must be empty (a new
// PostgreSQL database, say): settings (the ticket signing key among
// them, so tickets stay valid), environments, groups, users with their
// password hashes and second factors, memberships, tunnels, sessions and
// the audit log, ids and times unchanged. It runs in one transaction on
// dst: all of it is copied or nothing. It returns the rows per table.
func Copy(ctx context.Context, src, dst *SQLite) (map[string]int, error) {
	sv, err := schemaVersion(ctx, src.db)
	if err != nil {
		return nil, fmt.Errorf("copy: source: %w", err)
	}
	dv, err := schemaVersion(ctx, dst.db)
	if err != nil {
		return nil, fmt.Errorf("copy: target: %w", err)
	}
	if sv != dv {
		return nil, fmt.Errorf("copy: the source's schema is version %d and the target's %d: open both with the same gateway version", sv, dv)
	}
	for _, table := range []string{"settings", "users", "tunnels", "audit"} {
		var n int
		if err := dst.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			return nil, fmt.Errorf("copy: target: %w", err)
		}
		if n > 0 {
			return nil, fmt.Errorf("copy: the target already holds a Porthole store (%d rows in %s): copy into an empty database", n, table)
		}
	}
	counts := map[string]int{}
	err = inTx(ctx, dst.db, func(tx *sqlTx) error {
		for _, table := range copyTables {
			n, err := copyTable(ctx, src.db, tx, table)
			if err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
			counts[table] = n
		}
		if dst.db.d.numbered {
			// New audit rows continue after the copied ids.
			if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('audit', 'id'), GREATEST((SELECT MAX(id) FROM audit), 1))`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("copy: %w (nothing was copied)", err)
	}
	return counts, nil
}

func schemaVersion(ctx context.Context, db *sqlDB) (int, error) {
	var v int
	err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func copyTable(ctx context.Context, src *sqlDB, dst *sqlTx, table string) (int, error) {
	rows, err := src.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	insert := `INSERT INTO ` + table + `(` + strings.Join(cols, ", ") + `) VALUES (` + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + `)`
	stmt, err := dst.PrepareContext(ctx, insert)
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	n := 0
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b)
			}
		}
		if _, err := stmt.ExecContext(ctx, vals...); err != nil {
			return n, errors.Join(fmt.Errorf("row %d", n+1), err)
		}
		n++
	}
	return n, rows.Err()
}
