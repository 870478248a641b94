package agentclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"metalplane/ramdisk/internal/protocol"
)

func TestPost(t *testing.T) {
	answer := `{"v":1,"type":"ok"}`
	status := 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s", r.Method, r.Header.Get("Content-Type"))
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	c := New(srv.URL)
	ctx := context.Background()
	if _, err := c.Post(ctx, protocol.NewHeartbeat("s"), "ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Post(ctx, protocol.NewHeartbeat("s"), "heartbeat"); err == nil {
		t.Error("wrong answer type accepted")
	}
	answer = `{"v":1,"type":"ok","extra":true}`
	if _, err := c.Post(ctx, protocol.NewHeartbeat("s"), "ok"); err == nil || !strings.Contains(err.Error(), "bad answer") {
		t.Errorf("invalid answer: %v", err)
	}
	answer = `{"v":1,"type":"heartbeat","steps":[{"id":"c1","name":"inspect","args":{"x":1}}]}`
	if _, err := c.Post(ctx, protocol.NewHeartbeat("s"), "heartbeat"); err == nil {
		t.Error("bad step args accepted")
	}
	answer, status = `{"v":1,"type":"error","error":"unknown session"}`, 401
	_, err := c.Post(ctx, protocol.NewHeartbeat("s"), "heartbeat")
	if !IsStatus(err, 401) || !strings.Contains(err.Error(), "unknown session") {
		t.Errorf("401: %v", err)
	}
	answer, status = strings.Repeat(" ", protocol.MaxMessageBytes+10), 200
	if _, err := c.Post(ctx, protocol.NewHeartbeat("s"), "ok"); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("huge answer: %v", err)
	}
	big := protocol.NewLog("s", []protocol.LogLine{{Message: strings.Repeat("x", protocol.MaxMessageBytes)}})
	if _, err := c.Post(ctx, big, "ok"); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("huge request: %v", err)
	}
}
