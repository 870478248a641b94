// Package runner is the ramdisk's life: hello, heartbeats, steps one at a time, results
// resent until acknowledged, logs shipped; and what to do when the agent is gone.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"metalplane/ramdisk/internal/agentclient"
	"metalplane/ramdisk/internal/protocol"
)

type Config struct {
	Client  *agentclient.Client
	Token   string
	Version string
	BootMAC string // "" when unknown
	Root    string // "/" on the machine; a fake tree in tests
	// Power reboots or powers off; it returns only on failure (tests return nil).
	Power func(action string) error
	// HelloTimeout bounds the first hello's retries; LostTimeout how long the agent may be
	// unreachable (or our session unknown to it) before we give up.
	HelloTimeout, LostTimeout time.Duration
	Console                   io.Writer
}

// ErrFatal wraps the errors after which the caller powers the machine off.
var ErrFatal = errors.New("fatal")

type Runner struct {
	cfg  Config
	logs *logShipper

	mu       sync.Mutex
	session  string
	interval time.Duration
	seen     map[string]bool // step ids queued or run: a step is run once
}

func New(cfg Config) *Runner {
	if cfg.HelloTimeout == 0 {
		cfg.HelloTimeout = 10 * time.Minute
	}
	if cfg.LostTimeout == 0 {
		cfg.LostTimeout = 30 * time.Minute
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	return &Runner{cfg: cfg, logs: &logShipper{console: cfg.Console}, seen: map[string]bool{}}
}

func (r *Runner) log(level, step, format string, a ...any) {
	r.logs.add(level, step, fmt.Sprintf(format, a...), nil)
}

func (r *Runner) currentSession() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.session
}

// backoff sleeps 1 s doubling to 30 s, with jitter so a rack booting at once spreads out;
// false when ctx ended.
func backoff(ctx context.Context, attempt int) bool {
	d := min(time.Second<<min(attempt, 5), 30*time.Second)
	d = d/2 + rand.N(d/2+1)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// hello gets a session, retrying until the deadline.
func (r *Runner) hello(ctx context.Context, deadline time.Time) error {
	var mac *string
	if r.cfg.BootMAC != "" {
		mac = &r.cfg.BootMAC
	}
	for attempt := 0; ; attempt++ {
		a, err := r.cfg.Client.Post(ctx, protocol.NewHello(r.cfg.Token, r.cfg.Version, mac), "hello")
		if err == nil {
			r.mu.Lock()
			r.session, r.interval = a.Session, time.Duration(a.HeartbeatIntervalS)*time.Second
			r.mu.Unlock()
			r.log("info", "", "session %s, heartbeat every %d s", a.Session, a.HeartbeatIntervalS)
			return nil
		}
		r.log("warn", "", "hello failed (attempt %d): %v", attempt+1, err)
		if time.Now().After(deadline) || !backoff(ctx, attempt) {
			return fmt.Errorf("%w: no session from the site agent: %v", ErrFatal, err)
		}
	}
}

// Run lives until a reboot or poweroff step is done (nil), ctx ends, or the agent is lost
// for good (ErrFatal).
func (r *Runner) Run(ctx context.Context) error {
	if err := r.hello(ctx, time.Now().Add(r.cfg.HelloTimeout)); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan protocol.Step, 256)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.heartbeats(ctx, cancel, queue) })
	wg.Go(func() { r.shipLogs(ctx) })
	defer cancel(nil) // runs first: stops both loops before the Wait

	for {
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return ctx.Err()
		case step := <-queue:
			if done := r.runStep(ctx, step); done {
				return nil
			}
		}
	}
}

// heartbeats runs every interval whatever the worker does (a long erase must not make the
// agent declare us lost), queues new steps, and re-hellos when the session is unknown.
func (r *Runner) heartbeats(ctx context.Context, fatal context.CancelCauseFunc, queue chan<- protocol.Step) {
	lastOK := time.Now()
	for {
		r.mu.Lock()
		interval := r.interval
		r.mu.Unlock()
		a, err := r.cfg.Client.Post(ctx, protocol.NewHeartbeat(r.currentSession()), "heartbeat")
		switch {
		case err == nil:
			lastOK = time.Now()
			for _, s := range a.Steps {
				r.mu.Lock()
				isNew := !r.seen[s.ID]
				r.seen[s.ID] = true
				r.mu.Unlock()
				if isNew {
					select {
					case queue <- s:
					case <-ctx.Done():
						return
					}
				}
			}
		case ctx.Err() != nil:
			return
		case agentclient.IsStatus(err, 401):
			// The agent forgot us (restarted, or declared us lost). The token is one-time,
			// so this usually fails too, until LostTimeout.
			r.log("error", "", "session refused: %v; saying hello again", err)
			if herr := r.hello(ctx, time.Now()); herr == nil {
				lastOK = time.Now()
			}
		default:
			r.log("warn", "", "heartbeat failed: %v", err)
		}
		if time.Since(lastOK) > r.cfg.LostTimeout {
			fatal(fmt.Errorf("%w: no heartbeat answered for %s: %v", ErrFatal, r.cfg.LostTimeout, err))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func (r *Runner) shipLogs(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			// A last try for the lines that say why we stop.
			final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.logs.flush(final, r.cfg.Client, r.currentSession())
			cancel()
			return
		case <-time.After(2 * time.Second):
			r.logs.flush(ctx, r.cfg.Client, r.currentSession())
		}
	}
}

// runStep runs one step and reports it until acknowledged; true after reboot/poweroff.
func (r *Runner) runStep(ctx context.Context, step protocol.Step) bool {
	r.log("info", step.ID, "running %s", step.Name)
	start := time.Now()
	result, err := r.execute(ctx, step)
	if err != nil {
		r.log("error", step.ID, "%s failed after %.1f s: %v", step.Name, time.Since(start).Seconds(), err)
	} else {
		r.log("info", step.ID, "%s succeeded in %.1f s", step.Name, time.Since(start).Seconds())
	}
	acked := r.report(ctx, protocol.NewResult("", step.ID, result, err))
	if err != nil || (step.Name != protocol.StepReboot && step.Name != protocol.StepPoweroff) {
		return false
	}
	if !acked {
		r.log("warn", step.ID, "%s not acknowledged; doing it anyway", step.Name)
	}
	r.logs.flush(ctx, r.cfg.Client, r.currentSession())
	if perr := r.cfg.Power(step.Name); perr != nil {
		r.log("error", step.ID, "%s failed: %v", step.Name, perr)
		return false
	}
	return true
}

// report sends a result until the agent acknowledges it (or refuses it for good).
func (r *Runner) report(ctx context.Context, res protocol.Result) bool {
	for attempt := 0; ; attempt++ {
		res.Session = r.currentSession() // a re-hello may have changed it
		_, err := r.cfg.Client.Post(ctx, res, "ok")
		switch {
		case err == nil:
			return true
		case agentclient.IsStatus(err, 409):
			r.log("warn", res.Step, "agent does not know step %s; result dropped", res.Step)
			return false
		case agentclient.IsStatus(err, 400) || agentclient.IsStatus(err, 413):
			if res.Status == "failed" {
				r.log("error", res.Step, "agent refused the failure report: %v", err)
				return false
			}
			// Our result was refused (too large?): report that as the step's failure.
			res = protocol.NewResult("", res.Step, nil, fmt.Errorf("result refused by the site agent: %v", err))
			continue
		}
		r.log("warn", res.Step, "sending the result failed (attempt %d): %v", attempt+1, err)
		if !backoff(ctx, attempt) {
			return false
		}
	}
}
