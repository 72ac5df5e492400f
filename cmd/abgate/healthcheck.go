package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// runHealthcheck asks a running abgate whether it is alive: exit 0 when
// the URL answers 200, 1 otherwise. The container image is distroless (no
// shell, no curl), so its HEALTHCHECK runs this instead.
//
// The default URL is the admin listener's /healthz, as the shipped
// deploy/abgate.yaml configures it (0.0.0.0:8081). Both listeners serve
// /healthz and /readyz; pass --url for another address or for /readyz.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("healthcheck", stderr)
	target := fs.String("url", "http://127.0.0.1:8081/healthz", "URL that must answer 200")
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "--url %q: must be an absolute http:// or https:// URL\n", *target)
		return errUsage
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "--timeout must be > 0")
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	client := &http.Client{
		// No proxy from the environment: the check is about this
		// container, and HTTPS_PROXY is often set for the upstreams.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		// A redirect is not health: report the first answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u.Redacted(), resp.Status)
	}
	fmt.Fprintf(stdout, "%s: %s\n", u.Redacted(), resp.Status)
	return nil
}
