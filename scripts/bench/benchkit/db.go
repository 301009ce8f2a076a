package benchkit

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OpenPool connects to url with at most conns connections.
func OpenPool(ctx context.Context, url string, conns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	cfg.MaxConns = int32(max(conns, 1))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return pool, nil
}

// DropDB drops the database that dbURL names, if it exists.
func DropDB(ctx context.Context, dbURL string) error {
	return adminDB(ctx, dbURL, false)
}

// RecreateDB drops and creates the database that dbURL names, connecting
// to the server's "postgres" database to do it. Benchmarks run on a fresh
// database each time so figures do not depend on what an earlier run left.
func RecreateDB(ctx context.Context, dbURL string) error {
	return adminDB(ctx, dbURL, true)
}

func adminDB(ctx context.Context, dbURL string, create bool) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" || strings.ContainsAny(name, `"/`) {
		return fmt.Errorf("refusing to drop database %q", name)
	}
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	if !create {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	return nil
}
