// Package connstr writes ready-to-copy connection strings for a database
// reached through a Porthole tunnel on localhost:PORT. The portal and the
// tray app both use it, so users see the same strings everywhere.
package connstr

import (
	"fmt"
	"strconv"
)

// Kind is the kind of database behind a tunnel.
type Kind string

// Kinds Porthole writes connection strings for.
const (
	Unknown    Kind = ""
	MySQL      Kind = "mysql"
	PostgreSQL Kind = "postgresql"
	SQLServer  Kind = "sqlserver"
	Oracle     Kind = "oracle"
)

// Name is the database's name as people write it.
func (k Kind) Name() string {
	switch k {
	case MySQL:
		return "MySQL"
	case PostgreSQL:
		return "PostgreSQL"
	case SQLServer:
		return "SQL Server"
	case Oracle:
		return "Oracle"
	}
	return "TCP"
}

// Guess names the database kind from the target's port (the well-known
// ports), or Unknown.
func Guess(port int) Kind {
	switch port {
	case 3306, 3307, 33060:
		return MySQL
	case 5432, 5433:
		return PostgreSQL
	case 1433, 1434:
		return SQLServer
	case 1521, 1522:
		return Oracle
	}
	return Unknown
}

// Example is one connection string and what it is for.
type Example struct {
	Label string // e.g. "psql", "JDBC", "ODBC"
	Text  string
}

// For returns connection strings for a tunnel listening on localhost:port
// (port 0 writes PORT for the user to fill in). For Unknown it returns the
// strings of every kind, each labelled with its database.
func For(kind Kind, port int) []Example {
	p := "PORT"
	if port > 0 {
		p = strconv.Itoa(port)
	}
	switch kind {
	case MySQL:
		return []Example{
			{"mysql", fmt.Sprintf("mysql --protocol=TCP -h 127.0.0.1 -P %s -u USER -p DATABASE", p)},
			{"JDBC", fmt.Sprintf("jdbc:mysql://localhost:%s/DATABASE", p)},
			// 127.0.0.1, not localhost: MySQL and MariaDB drivers take
			// "localhost" to mean the local Unix socket, not the tunnel.
			{"ODBC", fmt.Sprintf("Driver={MySQL ODBC 8.0 Unicode Driver};Server=127.0.0.1;Port=%s;Database=DATABASE;User=USER;Password=PASSWORD;", p)},
			{"ODBC (MariaDB driver)", fmt.Sprintf("Driver={MariaDB Unicode};Server=127.0.0.1;Port=%s;Database=DATABASE;User=USER;Password=PASSWORD;", p)},
		}
	case PostgreSQL:
		return []Example{
			{"psql", fmt.Sprintf(`psql "host=localhost port=%s dbname=DATABASE user=USER"`, p)},
			{"JDBC", fmt.Sprintf("jdbc:postgresql://localhost:%s/DATABASE", p)},
			{"ODBC", fmt.Sprintf("Driver={PostgreSQL Unicode};Server=localhost;Port=%s;Database=DATABASE;Uid=USER;Pwd=PASSWORD;", p)},
		}
	case SQLServer:
		return []Example{
			{"sqlcmd", fmt.Sprintf("sqlcmd -S localhost,%s -U USER -d DATABASE", p)},
			{"JDBC", fmt.Sprintf("jdbc:sqlserver://localhost:%s;databaseName=DATABASE", p)},
			{"ODBC", fmt.Sprintf("Driver={ODBC Driver 18 for SQL Server};Server=localhost,%s;Database=DATABASE;Uid=USER;Pwd=PASSWORD;", p)},
		}
	case Oracle:
		return []Example{
			{"sqlplus", fmt.Sprintf("sqlplus USER@//localhost:%s/SERVICE", p)},
			{"JDBC", fmt.Sprintf("jdbc:oracle:thin:@//localhost:%s/SERVICE", p)},
			{"ODBC", fmt.Sprintf("Driver={Oracle in OraDB19Home1};Dbq=localhost:%s/SERVICE;Uid=USER;Pwd=PASSWORD;", p)},
		}
	}
	var all []Example
	for _, k := range []Kind{PostgreSQL, MySQL, SQLServer} {
		for _, e := range For(k, port) {
			e.Label = k.Name() + " · " + e.Label
			all = append(all, e)
		}
	}
	return append(all, Example{"any TCP client", "localhost:" + p})
}
