// Command ferretdb runs FerretDB 1.24 (SQLite handler) on one 127.0.0.1 port for lifeguard's tests.
//
// The module's own cmd/ferretdb panics at start when installed with `go install` (its version
// file is generated at release time), so the tests run this launcher over the embeddable package.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	port := flag.Int("port", 27017, "TCP port on 127.0.0.1")
	dir := flag.String("dir", "", "SQLite directory (created when missing)")
	flag.Parse()
	if *dir == "" {
		fail("-dir is required")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fail(err.Error())
	}

	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	db, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	})
	if err != nil {
		fail(err.Error())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Run opens the listener itself, so "listening" is printed once a dial succeeds.
	go func() {
		for ctx.Err() == nil {
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				fmt.Printf("listening on %s\n", addr)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	if err := db.Run(ctx); err != nil {
		fail(err.Error())
	}
}

func fail(message string) {
	fmt.Fprintf(os.Stderr, "ferretdb: %s\n", message)
	os.Exit(1)
}
