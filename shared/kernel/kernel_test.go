package kernel

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

func TestReadMessage(t *testing.T) {
	frame := func(body string) []byte {
		var b bytes.Buffer
		if err := WriteRaw(&b, []byte(body)); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	tests := []struct {
		name    string
		input   []byte
		max     uint32
		want    string
		wantErr error
	}{
		{"one message", frame(`{"id":1}`), 100, `{"id":1}`, nil},
		{"empty body", frame(``), 100, ``, nil},
		{"exactly the limit", frame(`1234`), 4, `1234`, nil},
		{"over the limit", frame(`12345`), 4, ``, ErrTooLarge},
		{"end between messages", nil, 100, ``, io.EOF},
		{"a cut header", []byte{0, 0}, 100, ``, io.ErrUnexpectedEOF},
		{"a cut body", frame(`{"id":1}`)[:7], 100, ``, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadMessage(bytes.NewReader(tt.input), tt.max)
			if !errors.Is(err, tt.wantErr) || string(got) != tt.want {
				t.Errorf("ReadMessage = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestWriteMessageRoundTrip(t *testing.T) {
	var b bytes.Buffer
	in := Event{Type: TypeDone, ID: 7, Error: &CellError{Name: "ValueError", Value: "v", Traceback: []string{"a", "b"}}}
	if err := WriteMessage(&b, in); err != nil {
		t.Fatal(err)
	}
	body, err := ReadMessage(&b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out Event
	if err := json.Unmarshal(body, &out); err != nil || out.ID != 7 || out.Error.Name != "ValueError" || len(out.Error.Traceback) != 2 {
		t.Errorf("round trip: %s -> %+v, %v", body, out, err)
	}
}

// driverPipes are the three pipes of a fake driver: the test writes into
// them as a driver would and Demux reads them.
type driverPipes struct {
	out, err, ev *os.File // the driver's ends
	done         chan error
	events       chan string // each message as Demux hands it over
	got          []Output    // read only after done
}

func startDemux(t *testing.T) *driverPipes {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &driverPipes{out: outW, err: errW, ev: evW, done: make(chan error, 1), events: make(chan string, 16)}
	go func() {
		p.done <- Demux(outR, errR, evR, 1<<20, func(o Output) error {
			p.got = append(p.got, o)
			if o.Stream == Events {
				p.events <- string(o.Data)
			}
			return nil
		})
	}()
	return p
}

func (p *driverPipes) close() {
	_ = p.out.Close()
	_ = p.err.Close()
	_ = p.ev.Close()
}

func TestDemuxDeliversOutputBeforeTheMessageWrittenAfterIt(t *testing.T) {
	p := startDemux(t)
	// Everything is written before Demux reads anything that matters: the
	// pipes are all readable at once, as when a driver flushed its output
	// and sent done in one go.
	for _, step := range []struct {
		f    *os.File
		data string
	}{
		{p.out, "a1 "}, {p.err, "e1 "}, {p.out, "a2"},
		{p.ev, "msg1"},
		{p.err, "e2"},
		{p.ev, "msg2"},
	} {
		var err error
		if step.f == p.ev {
			err = WriteRaw(step.f, []byte(step.data))
		} else {
			_, err = step.f.WriteString(step.data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	p.close()
	if err := <-p.done; err != nil {
		t.Fatal(err)
	}
	// What was written before a message comes before it (output written
	// just after it may too); pieces of different streams may interleave.
	before := map[string]map[Stream]string{}
	seen := map[Stream]string{}
	for _, o := range p.got {
		if o.Stream == Events {
			before[string(o.Data)] = map[Stream]string{Stdout: seen[Stdout], Stderr: seen[Stderr]}
			continue
		}
		seen[o.Stream] += string(o.Data)
	}
	if b := before["msg1"]; b[Stdout] != "a1 a2" || !strings.HasPrefix(b[Stderr], "e1 ") {
		t.Errorf("before msg1: %v, want stdout %q and stderr %q", b, "a1 a2", "e1 ")
	}
	if b := before["msg2"]; b[Stdout] != "a1 a2" || b[Stderr] != "e1 e2" {
		t.Errorf("before msg2: %v", b)
	}
}

func TestDemuxIsNotHeldBackByEndlessOutput(t *testing.T) {
	p := startDemux(t)
	stop := make(chan struct{})
	printed := make(chan struct{})
	go func() {
		// A process that never stops printing (a forked child, a thread).
		defer close(printed)
		chunk := bytes.Repeat([]byte("x"), 4096)
		for {
			select {
			case <-stop:
				return
			default:
				if _, err := p.out.Write(chunk); err != nil {
					return
				}
			}
		}
	}()
	if err := WriteRaw(p.ev, []byte("done")); err != nil {
		t.Fatal(err)
	}
	_ = p.ev.Close()
	// The message comes through while the printer goes on.
	if msg := <-p.events; msg != "done" {
		t.Errorf("message %q", msg)
	}
	close(stop)
	<-printed
	_ = p.out.Close()
	_ = p.err.Close()
	if err := <-p.done; err != nil {
		t.Fatal(err)
	}
}

func TestDemuxRefusesATooLargeMessage(t *testing.T) {
	p := startDemux(t)
	if err := WriteRaw(p.ev, bytes.Repeat([]byte("x"), 2<<20)); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Log(err)
	}
	if err := <-p.done; !errors.Is(err, ErrTooLarge) {
		t.Errorf("Demux = %v, want ErrTooLarge", err)
	}
	p.close()
}
