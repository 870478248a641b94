package runner

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"metalplane/ramdisk/internal/agentclient"
	"metalplane/ramdisk/internal/protocol"
)

// maxBuffered bounds the lines kept while the agent is unreachable; the oldest go first.
const maxBuffered = 5000

// maxPerMessage is the schema's limit on lines per log message.
const maxPerMessage = 500

// logShipper writes every line to the console at once and ships it to the agent in
// batches, keeping lines that could not be sent for the next try.
type logShipper struct {
	mu      sync.Mutex
	lines   []protocol.LogLine
	dropped int
	console io.Writer
}

func (l *logShipper) add(level, step, msg string, progress *float64) {
	line := protocol.LogLine{
		At: time.Now().UTC().Format(time.RFC3339Nano), Level: level,
		Message: protocol.Truncate(msg, protocol.MaxTextChars), Step: step, Progress: progress,
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.console != nil {
		fmt.Fprintf(l.console, "%s %s %s %s\n", line.At, level, step, msg)
	}
	if len(l.lines) >= maxBuffered {
		l.lines = l.lines[1:]
		l.dropped++
	}
	l.lines = append(l.lines, line)
}

// flush sends what is buffered, in batches; on a failure the rest waits for the next call.
func (l *logShipper) flush(ctx context.Context, c *agentclient.Client, session string) {
	for {
		l.mu.Lock()
		if l.dropped > 0 {
			l.lines = append([]protocol.LogLine{{At: time.Now().UTC().Format(time.RFC3339Nano), Level: "warn",
				Message: fmt.Sprintf("%d log lines dropped while the site agent was unreachable", l.dropped)}}, l.lines...)
			l.dropped = 0
		}
		batch := l.lines[:min(len(l.lines), maxPerMessage)]
		l.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		if _, err := c.Post(ctx, protocol.NewLog(session, batch), "ok"); err != nil {
			if agentclient.IsStatus(err, 400) || agentclient.IsStatus(err, 413) {
				l.remove(len(batch)) // refused for good: retrying would block every later line
			}
			return
		}
		l.remove(len(batch))
	}
}

func (l *logShipper) remove(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = min(n, len(l.lines)) // lines dropped meanwhile were the oldest, i.e. these
	l.lines = l.lines[n:]
}
