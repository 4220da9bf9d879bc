// Command porthole-bench measures Porthole's tunnel against direct TCP in
// one run and prints a Markdown table (see scripts/bench and BENCHMARKS.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/porthole/porthole/internal/bench"
)

func main() {
	var cfg bench.Config
	flag.StringVar(&cfg.BinDir, "bin", "", "folder with the porthole and porthole-gateway binaries")
	flag.IntVar(&cfg.Rounds, "rounds", 8, "rounds per metric")
	flag.Int64Var(&cfg.Bytes, "bytes", 256<<20, "bytes per throughput round")
	flag.IntVar(&cfg.IdleTunnels, "tunnels", 10000, "tunnels held open at once")
	flag.StringVar(&cfg.Chisel, "chisel", "", "a chisel binary to compare with (scripts/bench builds one)")
	only := flag.String("only", "", "comma-separated groups to measure: throughput,rtt,socat,setup,idle,db,sessions (default all)")
	flag.Parse()
	if *only != "" {
		cfg.Only = map[string]bool{}
		for _, g := range strings.Split(*only, ",") {
			cfg.Only[strings.TrimSpace(g)] = true
		}
	}
	cfg.Postgres, cfg.MySQL = os.Getenv("PORTHOLE_TEST_POSTGRES"), os.Getenv("PORTHOLE_TEST_MYSQL")
	cfg.DBUser, cfg.DBPassword, cfg.DBName = os.Getenv("PORTHOLE_TEST_DB_USER"), os.Getenv("PORTHOLE_TEST_DB_PASSWORD"), os.Getenv("PORTHOLE_TEST_DB_NAME")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rs, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "porthole-bench:", err)
		os.Exit(1)
	}
	bench.Table(os.Stdout, rs)
}
