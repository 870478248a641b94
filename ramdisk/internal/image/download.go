// Package image writes disk images and config drives served by the site agent.
package image

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Client fetches images: a header timeout, and an idle timeout while reading the body,
// but no overall one (a 20 GB image takes long on a slow link, and that is fine).
var Client = &http.Client{Transport: &http.Transport{
	Proxy:                 nil, // the agent is on the provisioning network; no proxy there
	ResponseHeaderTimeout: 30 * time.Second,
	IdleConnTimeout:       30 * time.Second,
}}

// IdleTimeout fails a download that makes no progress for this long.
var IdleTimeout = 60 * time.Second

// get starts a download; the returned body fails if stalled for IdleTimeout.
func get(ctx context.Context, url string) (io.ReadCloser, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, 0, fmt.Errorf("bad image URL: %w", err)
	}
	resp, err := Client.Do(req)
	if err != nil {
		cancel()
		return nil, 0, fmt.Errorf("downloading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, 0, fmt.Errorf("downloading %s: HTTP %s", url, resp.Status)
	}
	timer := time.AfterFunc(IdleTimeout, cancel)
	return &idleBody{body: resp.Body, timer: timer, cancel: cancel}, resp.ContentLength, nil
}

type idleBody struct {
	body   io.ReadCloser
	timer  *time.Timer
	cancel context.CancelFunc
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if n > 0 {
		b.timer.Reset(IdleTimeout)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	b.cancel()
	return b.body.Close()
}
