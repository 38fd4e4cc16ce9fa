package server

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpafeed/cpafeed/configs"
)

// testServer is a recovered Server on the embedded default config (edit
// changes it first) and a fresh data dir, shut down at cleanup. Its
// handler is called directly; nothing listens.
func testServer(t testing.TB, edit func(*Config)) *Server {
	t.Helper()
	cfg, err := ParseConfig(configs.Default)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	if edit != nil {
		edit(&cfg)
	}
	cfg = cfg.WithDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Recover(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	return s
}

// emfileListener fails its first n Accepts with EMFILE, as a process out
// of file descriptors does, then accepts from the real listener.
type emfileListener struct {
	net.Listener
	n int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.n > 0 {
		l.n--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestServeSurvivesAcceptEMFILE: a process out of file descriptors goes on
// serving once descriptors are free again: Accept failing with EMFILE is
// retried with a backoff (counted), not the end of Serve.
func TestServeSurvivesAcceptEMFILE(t *testing.T) {
	s := testServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	before := httpAcceptErrors.Get()
	served := make(chan error, 1)
	go func() { served <- s.Serve(&emfileListener{Listener: ln, n: 5}) }()

	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	select {
	case err := <-served:
		t.Fatalf("Serve returned after EMFILE: %v", err)
	default:
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after EMFILE: %v %v", resp, err)
	}
	if got := httpAcceptErrors.Get() - before; got != 5 {
		t.Fatalf("cpafeed_http_accept_errors_total grew by %d, want 5", got)
	}
	// Shutdown ends Serve cleanly.
	if err := s.http.ShutdownWithContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after shutdown: %v", err)
	}
}

// TestRetryListenerCloseEndsBackoff: Close during a backoff returns at once.
func TestRetryListenerCloseEndsBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newRetryListener(&emfileListener{Listener: ln, n: 1 << 30}, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	time.Sleep(50 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Accept after Close: no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting 5 s after Close")
	}
}

func TestAcceptRetryable(t *testing.T) {
	f := func(err error, want bool) {
		t.Helper()
		if got := acceptRetryable(err); got != want {
			t.Fatalf("acceptRetryable(%v) = %v", err, got)
		}
	}
	wrap := func(e syscall.Errno) error { return &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", e)} }
	f(wrap(syscall.EMFILE), true)
	f(wrap(syscall.ENFILE), true)
	f(wrap(syscall.ENOBUFS), true)
	f(wrap(syscall.ECONNABORTED), true)
	f(wrap(syscall.EBADF), false)
	f(net.ErrClosed, false)
}

// TestMaxConnsDefaultsBelowOpenFileLimit: http.max_conns defaults to the
// open-file limit less a reserve, max_conns_per_ip to a quarter of it;
// explicit values are kept, one above the limit is refused.
func TestMaxConnsDefaultsBelowOpenFileLimit(t *testing.T) {
	f := func(limit, want int) {
		t.Helper()
		if got := defaultMaxConns(limit); got != want {
			t.Fatalf("defaultMaxConns(%d) = %d, want %d", limit, got, want)
		}
	}
	f(1024, 896)
	f(256, 192)
	f(100, 50)
	f(20000, 18976)
	f(1<<20, 100000)
	f(0, 100000)

	// parse reads the default config with lines added to its http
	// section, as if the process's open-file limit were limit.
	parse := func(lines string, limit int) (HTTPConfig, []error) {
		t.Helper()
		c, err := ParseConfig([]byte(strings.Replace(string(configs.Default), "\nhttp:\n", "\nhttp:\n"+lines, 1)))
		if err != nil {
			t.Fatal(err)
		}
		// Defaults again, from this limit.
		c.HTTP.OpenFileLimit = limit
		if !strings.Contains(lines, "max_conns:") {
			c.HTTP.MaxConns = 0
		}
		if !strings.Contains(lines, "max_conns_per_ip:") {
			c.HTTP.MaxConnsPerIP = 0
		}
		c = c.WithDefaults()
		return c.HTTP, c.Validate()
	}
	if h, errs := parse("", 1024); len(errs) > 0 || h.MaxConns != 896 || h.MaxConnsPerIP != 224 || !h.maxConnsDefault {
		t.Fatalf("defaults at 1024: %d %d %v", h.MaxConns, h.MaxConnsPerIP, errs)
	}
	if h, errs := parse("  max_conns: 500\n  max_conns_per_ip: -1\n", 1024); len(errs) > 0 || h.MaxConns != 500 || h.MaxConnsPerIP != -1 || h.maxConnsDefault {
		t.Fatalf("explicit: %d %d %v", h.MaxConns, h.MaxConnsPerIP, errs)
	}
	if _, errs := parse("  max_conns: 2000\n", 1024); len(errs) != 1 || !strings.Contains(errs[0].Error(), "http.max_conns: 2000 is above the process's open-file limit (RLIMIT_NOFILE) 1024") {
		t.Fatalf("max_conns above the limit: %v", errs)
	}
	c, _ := ParseConfig(configs.Default)
	c.HTTP.MaxInflateBytes = 1000
	if errs := c.Validate(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "http.max_inflate_bytes: must be >= twice max_decompressed_bytes") {
		t.Fatalf("max_inflate_bytes below max_decompressed_bytes: %v", errs)
	}
}
