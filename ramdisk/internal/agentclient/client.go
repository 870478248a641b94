// Package agentclient talks to the site agent: one JSON POST per message, answers
// validated against the protocol's schemas.
package agentclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"metalplane/ramdisk/internal/protocol"
)

// Timeout bounds every request: the agent answers at once (it never long-polls us).
const Timeout = 30 * time.Second

// StatusError is an HTTP error answer; Status says which (401 session or token unknown,
// 409 step not given, 400 bad message, 413 too large).
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("site agent answered HTTP %d: %s", e.Status, e.Message)
}

// IsStatus tells whether err is an answer with that HTTP status.
func IsStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}

type Client struct {
	URL  string
	HTTP *http.Client
}

func New(url string) *Client {
	return &Client{URL: url, HTTP: &http.Client{Timeout: Timeout, Transport: &http.Transport{Proxy: nil}}}
}

// Post sends one request and returns the answer, which must be of type want.
func (c *Client) Post(ctx context.Context, req any, want string) (*protocol.Answer, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if len(body) > protocol.MaxMessageBytes {
		return nil, fmt.Errorf("request of %d bytes is over the %d byte limit", len(body), protocol.MaxMessageBytes)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, protocol.MaxMessageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if len(data) > protocol.MaxMessageBytes {
		return nil, fmt.Errorf("answer over the %d byte limit", protocol.MaxMessageBytes)
	}
	if resp.StatusCode != http.StatusOK {
		msg := http.StatusText(resp.StatusCode)
		if a, err := protocol.DecodeAnswer(data); err == nil && a.Type == "error" {
			msg = a.Error
		}
		return nil, &StatusError{Status: resp.StatusCode, Message: protocol.Truncate(msg, 500)}
	}
	a, err := protocol.DecodeAnswer(data)
	if err != nil {
		return nil, fmt.Errorf("bad answer from the site agent: %w", err)
	}
	if a.Type != want {
		return nil, fmt.Errorf("site agent answered %q to a request expecting %q", a.Type, want)
	}
	return a, nil
}
