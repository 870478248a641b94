package runner

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"metalplane/ramdisk/internal/agentclient"
	"metalplane/ramdisk/internal/protocol"
)

const token = "tok_0123456789abcdef"

// fakeRoot is a machine with two disks (temp files) and one NIC.
func fakeRoot(t *testing.T) string {
	root := t.TempDir()
	write := func(p, s string) {
		full := filepath.Join(root, p)
		_ = os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/cpuinfo", "processor : 0\nmodel name : Test CPU\nflags : fpu\n")
	write("proc/meminfo", "MemTotal: 2000000 kB\n")
	write("sys/class/net/eth0/address", "52:54:00:12:34:56\n")
	_ = os.MkdirAll(filepath.Join(root, "sys/class/net/eth0/device"), 0o755)
	for name, size := range map[string]int64{"sda": 5 << 30, "sdb": 64 << 20} {
		write(fmt.Sprintf("sys/block/%s/size", name), fmt.Sprint(size/512))
		write("dev/"+name, "")
		if err := os.Truncate(filepath.Join(root, "dev", name), size); err != nil { // sparse
			t.Fatal(err)
		}
		f, _ := os.OpenFile(filepath.Join(root, "dev", name), os.O_WRONLY, 0)
		_, _ = f.WriteAt(bytes.Repeat([]byte{0xAA}, 4096), 0) // an old partition table
		_, _ = f.WriteAt(bytes.Repeat([]byte{0xAA}, 4096), size-4096)
		f.Close()
	}
	return root
}

type fakeAgent struct {
	t       *testing.T
	mu      sync.Mutex
	image   string
	sha     string
	sent    int
	results map[string]protocol.Result
	failed  map[string]bool
	logs    int
	hellos  int
}

func (a *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := protocol.ValidateRequest(body); err != nil {
		a.t.Errorf("invalid request %s: %v", body, err)
		w.WriteHeader(400)
		return
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	a.mu.Lock()
	defer a.mu.Unlock()
	reply := func(v string) { _, _ = w.Write([]byte(v)) }
	switch m["type"] {
	case "hello":
		a.hellos++
		if m["token"] != token || m["boot_mac"] != "52:54:00:12:34:56" {
			w.WriteHeader(401)
			reply(`{"v":1,"type":"error","error":"unknown token"}`)
			return
		}
		reply(`{"v":1,"type":"hello","session":"sess-1","heartbeat_interval_s":1}`)
	case "heartbeat":
		var steps []string
		switch {
		case a.sent == 0:
			steps = []string{
				`{"id":"c1","name":"inspect","args":{}}`,
				`{"id":"c2","name":"erase_devices_metadata","args":{"skip":["sdb"]}}`,
				fmt.Sprintf(`{"id":"c3","name":"write_image","args":{"url":%q,"sha256":%q,"format":"raw+gzip"}}`, a.image, a.sha),
			}
			a.sent = 3
		case a.sent == 3 && len(a.results) == 3:
			steps = []string{`{"id":"c4","name":"poweroff","args":{}}`}
			a.sent = 4
		case a.sent == 3:
			// Handing a step out again must not run it twice.
			steps = []string{`{"id":"c1","name":"inspect","args":{}}`}
		}
		reply(`{"v":1,"type":"heartbeat","steps":[` + strings.Join(steps, ",") + `]}`)
	case "result":
		var res protocol.Result
		_ = json.Unmarshal(body, &res)
		if !a.failed[res.Step] { // the first try of every result is lost: it must be resent
			a.failed[res.Step] = true
			w.WriteHeader(503)
			return
		}
		if _, dup := a.results[res.Step]; !dup {
			a.results[res.Step] = res
		}
		reply(`{"v":1,"type":"ok"}`)
	case "log":
		a.logs += len(m["lines"].([]any))
		reply(`{"v":1,"type":"ok"}`)
	}
}

func TestFullLoop(t *testing.T) {
	img := bytes.Repeat([]byte("metalplane image "), 200_000)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(img)
	_ = zw.Close()
	sum := sha256.Sum256(gz.Bytes())
	images := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(gz.Bytes()) }))
	defer images.Close()

	agent := &fakeAgent{t: t, image: images.URL + "/img.raw.gz", sha: hex.EncodeToString(sum[:]),
		results: map[string]protocol.Result{}, failed: map[string]bool{}}
	srv := httptest.NewServer(agent)
	defer srv.Close()

	root := fakeRoot(t)
	var powered []string
	r := New(Config{
		Client: agentclient.New(srv.URL), Token: token, Version: "test", BootMAC: "52:54:00:12:34:56", Root: root,
		Power: func(a string) error { powered = append(powered, a); return nil },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}

	agent.mu.Lock()
	defer agent.mu.Unlock()
	if len(powered) != 1 || powered[0] != "poweroff" {
		t.Errorf("power: %v", powered)
	}
	for _, id := range []string{"c1", "c2", "c3", "c4"} {
		if res := agent.results[id]; res.Status != "succeeded" {
			t.Errorf("%s: %+v", id, res)
		}
	}
	var inv protocol.InspectResult
	remarshal(agent.results["c1"].Result, &inv)
	if len(inv.Inventory.Disks) != 2 || inv.Inventory.CPU.Count != 1 || inv.Inventory.Boot.PXEInterface == nil {
		t.Errorf("inventory: %+v", inv.Inventory)
	}
	var erased protocol.EraseResult
	remarshal(agent.results["c2"].Result, &erased)
	if len(erased.Disks) != 1 || erased.Disks[0] != (protocol.ErasedDisk{Name: "/dev/sda", Method: "metadata"}) {
		t.Errorf("erase: %+v", erased)
	}
	var wrote protocol.WriteImageResult
	remarshal(agent.results["c3"].Result, &wrote)
	if wrote.Disk != "/dev/sda" || wrote.BytesWritten != int64(len(img)) {
		t.Errorf("write: %+v", wrote)
	}
	// On the disks: the image on sda (the smallest of at least 4 GiB), its old backup GPT
	// area zeroed; sdb skipped, untouched.
	sda, _ := os.Open(filepath.Join(root, "dev/sda"))
	defer sda.Close()
	head := make([]byte, len(img))
	_, _ = sda.ReadAt(head, 0)
	tail := make([]byte, 4096)
	_, _ = sda.ReadAt(tail, 5<<30-4096)
	if !bytes.Equal(head, img) || bytes.Count(tail, []byte{0}) != 4096 {
		t.Error("sda content")
	}
	sdb, _ := os.ReadFile(filepath.Join(root, "dev/sdb"))
	if sdb[0] != 0xAA {
		t.Error("sdb was erased although skipped")
	}
	if agent.logs == 0 || agent.hellos != 1 {
		t.Errorf("logs %d, hellos %d", agent.logs, agent.hellos)
	}
}

func remarshal(in, out any) {
	b, _ := json.Marshal(in)
	_ = json.Unmarshal(b, out)
}

// A step that fails is reported as failed with its error, and the loop goes on.
func TestFailedStepAndLostAgent(t *testing.T) {
	var mu sync.Mutex
	var results []protocol.Result
	gone := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case gone:
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"v":1,"type":"error","error":"unknown session"}`))
		case m["type"] == "hello":
			_, _ = w.Write([]byte(`{"v":1,"type":"hello","session":"s2","heartbeat_interval_s":1}`))
		case m["type"] == "heartbeat":
			_, _ = w.Write([]byte(`{"v":1,"type":"heartbeat","steps":[{"id":"w1","name":"write_image","args":{"url":"http://127.0.0.1:1/x","sha256":"` + strings.Repeat("a", 64) + `","format":"raw","root_device":{"name":"nvme9n1"}}}]}`))
		case m["type"] == "result":
			var res protocol.Result
			_ = json.Unmarshal(body, &res)
			results = append(results, res)
			gone = true // then the agent forgets the session, and hello is refused
			_, _ = w.Write([]byte(`{"v":1,"type":"ok"}`))
		default:
			_, _ = w.Write([]byte(`{"v":1,"type":"ok"}`))
		}
	}))
	defer srv.Close()
	r := New(Config{Client: agentclient.New(srv.URL), Token: token, Version: "t", Root: fakeRoot(t),
		Power: func(string) error { t.Error("no power step was given"); return nil }, LostTimeout: 2 * time.Second})
	err := r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "fatal") {
		t.Errorf("want a fatal error, got %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(results) != 1 || results[0].Status != "failed" || !strings.Contains(results[0].Error, "no disk matches") {
		t.Errorf("results: %+v", results)
	}
}

func TestHelloGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"v":1,"type":"error","error":"token already used"}`))
	}))
	defer srv.Close()
	r := New(Config{Client: agentclient.New(srv.URL), Token: token, Root: t.TempDir(), HelloTimeout: time.Second})
	err := r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "token already used") {
		t.Errorf("%v", err)
	}
}
