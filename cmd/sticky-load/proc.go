package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process a run started (the bridge, the floor): it is stopped
// with SIGTERM when the run ends, and its last lines of output are kept to
// say why it failed, if it did.
type child struct {
	name string
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed when the process has exited
	err  error         // its exit, once done is closed

	mu       sync.Mutex
	startup  []string // its output up to the listening line
	tail     []string // last lines of its output
	warnings []string // lines logged at WARN or ERROR (the first few)
	warned   int
}

const childTailLines = 30

// startChild starts cmd and waits until a line of its output (stdout and
// stderr together) matches listening, whose first group is the address it
// serves; startup bounds that wait.
func startChild(ctx context.Context, name string, cmd *exec.Cmd, listening *regexp.Regexp, startup time.Duration) (*child, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // no orphan if this run is killed
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pw.Close()
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			if !found {
				c.mu.Lock()
				c.startup = append(c.startup, line)
				c.mu.Unlock()
				if m := listening.FindStringSubmatch(line); m != nil {
					found = true
					addr <- m[1]
				}
			}
			c.mu.Lock()
			c.tail = append(c.tail, line)
			if len(c.tail) > childTailLines {
				c.tail = c.tail[len(c.tail)-childTailLines:]
			}
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				c.warned++
				if len(c.warnings) < 10 {
					c.warnings = append(c.warnings, line)
				}
			}
			c.mu.Unlock()
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		<-read // Wait closes nothing of ours, but the output must be read first
		c.err = cmd.Wait()
		close(c.done)
	}()
	timer := time.NewTimer(startup)
	defer timer.Stop()
	select {
	case a := <-addr:
		c.url = "http://" + a
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("%s exited before listening (%v):\n%s", name, c.err, c.lastLines())
	case <-timer.C:
		c.stop(10 * time.Second)
		return nil, fmt.Errorf("%s did not say it was listening within %s:\n%s", name, startup, c.lastLines())
	case <-ctx.Done():
		c.stop(10 * time.Second)
		return nil, ctx.Err()
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited says whether the process has ended, and how.
func (c *child) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM and waits for the exit, killing the process after
// grace; it returns the exit (nil for a clean stop).
func (c *child) stop(grace time.Duration) error {
	if done, err := c.exited(); done {
		return err
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", c.name, grace)
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
		return fmt.Errorf("%s: %w", c.name, c.err)
	}
	return c.err
}

func (c *child) lastLines() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return "  " + strings.Join(c.tail, "\n  ")
}

func (c *child) startupLines() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.startup, "\n")
}

// warningLines are how many lines it logged at WARN or ERROR, and the first few.
func (c *child) warningLines() (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.warned, append([]string(nil), c.warnings...)
}

// Mem is a process's resident memory, in bytes: RSS is RssAnon (heap,
// stacks, anonymous maps) plus RssFile (pages of mapped files, such as
// Badger's tables, which the kernel can drop and read again).
type Mem struct {
	RSS, Anon, File int64
}

// ReadMem reads a process's resident memory from /proc/<pid>/status.
func ReadMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	var m Mem
	for line := range strings.SplitSeq(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &m.RSS
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("/proc/%d/status: %s %q", pid, name, v)
		}
		*dst = kb << 10
	}
	if m.RSS == 0 {
		return Mem{}, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

// LoadAvg is the machine's load average over 1, 5 and 15 minutes.
type LoadAvg [3]float64

func (l LoadAvg) String() string { return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2]) }

// ReadLoadAvg reads /proc/loadavg.
func ReadLoadAvg() (LoadAvg, error) {
	var l LoadAvg
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l, err
	}
	_, err = fmt.Sscanf(string(b), "%f %f %f", &l[0], &l[1], &l[2])
	return l, err
}

// ReadCPU is the CPU time a process has used (user and system), from
// /proc/<pid>/stat.
func ReadCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] { // utime, stime
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc.
const clockTicks = 100
