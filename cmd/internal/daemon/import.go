package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// importOptions are the import subcommand's own flags.
type importOptions struct {
	file, format, rejects string
	m                     mapping
	batch                 int
	url, key              string
	restart               bool
	every                 time.Duration
	// afterBatch, if set, hears about every committed batch, and now is
	// the engine's clock (tests).
	afterBatch func(n int)
	now        func() time.Time
}

// importer writes batches somewhere: the engine on the store, or a
// running node over HTTP.
type importer interface {
	progress(source string) (store.ImportProgress, bool, error)
	forget(source string) error
	send(ctx context.Context, rows []core.ImportRow, p *store.ImportProgress) ([]core.ImportResult, error)
}

// importCommand runs "import FILE": it reads a CRM export (CSV with a
// header, or JSON lines) and imports it through the engine: straight into
// the store of a stopped standalone bridge, or with -url through a running
// node's POST /v1/import (a cluster's only way: the batches then go
// through the shared log to every node).
func importCommand(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer) int {
	cmd := name + " import"
	o, rest, err := parseImportFlags(args, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, importUsage)
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 2
	}
	cfg, err := config.Load(cmd, rest, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, importUsage)
			return 0
		}
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 2
	}
	applyMemoryLimit(cfg, getenv)
	return runImport(ctx, cmd, cfg, o, stderr)
}

const importUsage = `  FILE
    	the CRM export: CSV with a header, or JSON lines (first argument)
  -format csv|jsonl
    	force the format (default: detected from the content)
  -map field=Column,...
    	map columns to fields: customer_ref, name, phone, email, customer_id,
    	account_number, open_intents, variables (a JSON object), var.NAME
  -skip Column,...
    	columns not to import (other unknown columns become variables)
  -rejects FILE
    	where rejected rows are listed with their line and reason (FILE.rejects)
  -batch N
    	rows per transaction / log entry (1000; 200 with -url)
  -url http://node:8080
    	import through a running node (required on a cluster node)
  -key KEY
    	API key with the admin scope for -url (env STICKY_IMPORT_KEY)
  -restart
    	read the file from the start instead of resuming where a run stopped
  -progress-every D
    	how often the progress line is printed (1s)
`

func parseImportFlags(args []string, getenv func(string) string) (importOptions, []string, error) {
	o := importOptions{batch: 0, every: time.Second, key: getenv("STICKY_IMPORT_KEY")}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.file, args = args[0], args[1:]
	}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-")
		if !strings.HasPrefix(args[i], "-") {
			return o, nil, fmt.Errorf("unexpected %q: give FILE first, then the flags", args[i])
		}
		flagName, val, hasVal := strings.Cut(a, "=")
		takes := map[string]bool{"file": true, "format": true, "map": true, "skip": true, "rejects": true, "batch": true,
			"url": true, "key": true, "progress-every": true}
		switch {
		case flagName == "h" || flagName == "help":
			return o, nil, flag.ErrHelp
		case flagName == "restart":
			o.restart = true
			continue
		case !takes[flagName]:
			rest = append(rest, args[i])
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return o, nil, fmt.Errorf("-%s needs a value", flagName)
			}
			i++
			val = args[i]
		}
		var err error
		switch flagName {
		case "file":
			o.file = val
		case "format":
			o.format = strings.ToLower(val)
			if o.format != formatCSV && o.format != formatJSONL {
				err = errors.New("must be csv or jsonl")
			}
		case "map":
			var m map[string][]string
			if m, err = parseMap(val); err == nil {
				if o.m.named == nil {
					o.m.named = map[string][]string{}
				}
				for k, v := range m {
					o.m.named[k] = append(o.m.named[k], v...)
				}
			}
		case "skip":
			for _, c := range strings.Split(val, ",") {
				if c = strings.TrimSpace(c); c != "" {
					o.m.skip = append(o.m.skip, c)
				}
			}
		case "rejects":
			o.rejects = val
		case "batch":
			o.batch, err = strconv.Atoi(val)
			if err == nil && (o.batch < 1 || o.batch > core.MaxImportRows) {
				err = fmt.Errorf("must be 1 to %d", core.MaxImportRows)
			}
		case "url":
			o.url = strings.TrimRight(val, "/")
			if u, perr := url.Parse(o.url); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				err = errors.New("must be an http(s) URL of a node, e.g. http://node:8080")
			}
		case "key":
			o.key = val
		case "progress-every":
			o.every, err = time.ParseDuration(val)
		}
		if err != nil {
			return o, nil, fmt.Errorf("-%s %q: %v", flagName, val, err)
		}
	}
	if o.file == "" {
		return o, nil, errors.New("give the file to import: import FILE [flags]")
	}
	if o.rejects == "" {
		o.rejects = o.file + ".rejects"
	}
	if o.batch == 0 {
		o.batch = core.MaxImportRows
		if o.url != "" {
			o.batch = 200 // a log entry holds at most 1 MiB
		}
	}
	return o, rest, nil
}

// importFile is the file as read before anything is written: its format,
// columns, size and identity.
type importFile struct {
	f       *os.File
	format  string
	delim   rune
	targets []target // CSV
	start   int64    // offset after the header (CSV) or BOM
	lines   int64    // lines in the file
	size    int64
	source  string
}

// openImport reads and checks the whole file once (its hash is its
// identity for resuming) before anything is written.
func openImport(o importOptions) (*importFile, error) {
	f, err := os.Open(o.file)
	if err != nil {
		return nil, badf("cannot read %s: %v", o.file, err)
	}
	fail := func(err error) (*importFile, error) { f.Close(); return nil, err }
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		return fail(badf("cannot read %s: not a regular file", o.file))
	}
	sample := make([]byte, 64<<10)
	n, err := io.ReadFull(f, sample)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fail(badf("cannot read %s: %v", o.file, err))
	}
	sample = sample[:n]
	format, err := sniff(sample, o.format)
	if err != nil {
		return fail(badf("%s: %v", o.file, err))
	}
	imf := &importFile{f: f, format: format, size: st.Size()}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(badf("cannot read %s: %v", o.file, err))
	}
	h := sha256.New()
	var lines int64
	var last byte
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		lines += int64(bytes.Count(buf[:n], []byte("\n")))
		if n > 0 {
			last = buf[n-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(badf("cannot read %s: %v", o.file, err))
		}
	}
	if imf.size > 0 && last != '\n' {
		lines++
	}
	imf.lines = lines
	if bytes.HasPrefix(sample, []byte(bom)) {
		imf.start = int64(len(bom))
	}
	switch format {
	case formatCSV:
		body := sample[imf.start:]
		end := bytes.IndexByte(body, '\n')
		if end < 0 {
			end = len(body)
		}
		imf.delim = csvDelimiter(body[:end])
		cr := csv.NewReader(bytes.NewReader(body))
		cr.Comma = imf.delim
		cr.FieldsPerRecord = -1
		header, err := cr.Read()
		if err != nil {
			return fail(badf("%s: line 1: not a CSV header: %v", o.file, errCause(err)))
		}
		if !utf8Valid(header) {
			return fail(badf("%s: line 1: the header is not UTF-8 text", o.file))
		}
		imf.targets, err = o.m.resolve(header, true)
		if err != nil {
			return fail(&badInput{err.Error()})
		}
		if !identifies(imf.targets) {
			return fail(badf("%s: line 1: neither JSON lines nor a CSV header naming an identifier column (customer_ref, phone, email, customer_id, account_number): columns %s; name them with -map", o.file, quoteList(header)))
		}
		imf.start += cr.InputOffset()
	case formatJSONL:
		// The columns of JSON lines are the keys of the objects: a column
		// named in a flag must be a key of one of the first objects.
		keys, first := map[string]bool{}, true
		for i, line := range bytes.Split(bytes.TrimPrefix(sample, []byte(bom)), []byte("\n")) {
			if line = bytes.TrimSpace(line); len(line) == 0 {
				continue
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(line, &obj) != nil || obj == nil {
				if first {
					return fail(badf("%s: line %d: neither JSON lines (one object per line) nor CSV with a header", o.file, i+1))
				}
				continue // a bad row, rejected when it is read (or cut off by the sample)
			}
			first = false
			for k := range obj {
				keys[k] = true
			}
		}
		var cols []string
		for k := range keys {
			cols = append(cols, k)
		}
		if _, err := o.m.resolve(cols, true); err != nil {
			return fail(&badInput{err.Error()})
		}
	}
	// The identity covers the bytes and how they are read: the same file
	// read with other flags is another import.
	spec, _ := json.Marshal([]any{format, o.m.named, o.m.skip})
	h.Write(spec)
	imf.source = hex.EncodeToString(h.Sum(nil)[:16])
	return imf, nil
}

func utf8Valid(fields []string) bool {
	for _, f := range fields {
		if !utf8.ValidString(f) {
			return false
		}
	}
	return true
}

func errCause(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// reader opens the rows after offset (0: from the first row).
func (imf *importFile) reader(o importOptions, offset, line int64) (rowReader, error) {
	if offset == 0 {
		offset = imf.start
		if imf.format == formatCSV {
			line = 1
		}
	}
	if _, err := imf.f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(imf.f, 256<<10)
	if imf.format == formatCSV {
		return newCSVRows(br, imf.delim, imf.targets, offset, line), nil
	}
	return &jsonRows{br: br, m: o.m, cache: map[string]target{}, offset: offset, line: line}, nil
}

// rejectsFile lists rejected rows as CSV: line,reason.
type rejectsFile struct {
	f    *os.File
	w    *csv.Writer
	cw   *countingWriter
	size int64
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// openRejects starts the rejects file afresh, or, resuming, cuts it back to
// where the last committed batch began and writes that batch's rejects
// again (see store.ImportProgress.RejectsAt).
func openRejects(path string, resume *store.ImportProgress) (*rejectsFile, error) {
	flags := os.O_CREATE | os.O_WRONLY
	if resume == nil {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	r := &rejectsFile{f: f}
	if resume != nil {
		if err := f.Truncate(resume.RejectsAt); err != nil {
			f.Close()
			return nil, err
		}
		r.size = resume.RejectsAt
	}
	if _, err := f.Seek(r.size, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	r.cw = &countingWriter{w: f, n: r.size}
	r.w = csv.NewWriter(r.cw)
	if resume == nil || r.size == 0 {
		r.w.Write([]string{"line", "reason"})
	}
	if resume != nil {
		for _, rj := range resume.Rejects {
			r.w.Write([]string{strconv.FormatInt(rj.Line, 10), rj.Reason})
		}
	}
	return r, r.flush()
}

func (r *rejectsFile) add(line int64, reason string) {
	r.w.Write([]string{strconv.FormatInt(line, 10), reason})
}

func (r *rejectsFile) flush() error {
	r.w.Flush()
	r.size = r.cw.n
	return r.w.Error()
}

func runImport(ctx context.Context, cmd string, cfg config.Config, o importOptions, stderr io.Writer) int {
	imf, err := openImport(o)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 2
	}
	defer imf.f.Close()
	var imp importer
	if o.url != "" {
		imp = &httpImporter{base: o.url, key: o.key, client: &http.Client{Timeout: 2 * time.Minute}}
	} else {
		if cfg.Cluster.Name != "" {
			fmt.Fprintf(stderr, "%s: this is a cluster node (STICKY_CLUSTER=%s): import through a running node so that every node gets the rows: %s import %s -url http://node:8080 -key ADMIN_KEY\n",
				cmd, cfg.Cluster.Name, strings.Fields(cmd)[0], o.file)
			return 2
		}
		eng, closeStore, code := openImportStore(cmd, cfg, o.now, stderr)
		if eng == nil {
			return code
		}
		defer closeStore()
		imp = engineImporter{eng}
	}

	prev, found, err := imp.progress(imf.source)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	var resume *store.ImportProgress
	switch {
	case found && o.restart:
		if err := imp.forget(imf.source); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
			return 1
		}
		prev = store.ImportProgress{}
		fmt.Fprintf(stderr, "%s: -restart: reading %s from the start\n", cmd, o.file)
	case found:
		resume = &prev
		fmt.Fprintf(stderr, "%s: resuming %s after line %d (%d rows done before: %d imported, %d updated, %d unchanged, %d rejected)\n",
			cmd, o.file, prev.Line, prev.Rows, prev.Imported, prev.Updated, prev.Unchanged, prev.Rejected)
	default:
		prev = store.ImportProgress{}
	}
	rj, err := openRejects(o.rejects, resume)
	if err != nil {
		fmt.Fprintf(stderr, "%s: rejects file: %v\n", cmd, err)
		return 1
	}
	defer rj.f.Close()
	rr, err := imf.reader(o, prev.Offset, prev.Line)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	total := imf.lines
	if imf.format == formatCSV {
		total-- // the header
	}
	tally := prev
	began, lastPrint := time.Now(), time.Now()
	startRows := prev.Rows
	batches := 0
	printProgress := func(final bool) {
		took := time.Since(began).Seconds()
		rate := 0.0
		if took > 0 {
			rate = float64(tally.Rows-startRows) / took
		}
		eta := "?"
		if rate > 0 && total > tally.Rows {
			eta = (time.Duration(float64(total-tally.Rows)/rate) * time.Second).String()
		} else if total <= tally.Rows {
			eta = "0s"
		}
		if !final {
			fmt.Fprintf(stderr, "%s: %d/%d rows, %.0f rows/s, ETA %s\n", cmd, tally.Rows, max(total, tally.Rows), rate, eta)
		}
	}
	batch := make([]core.ImportRow, 0, o.batch)
	var bytesInBatch int
	var off, line int64
	eof := false
	for !eof {
		batch, bytesInBatch = batch[:0], 0
		for len(batch) < o.batch && (o.url == "" || bytesInBatch < 256<<10) {
			row, roff, rline, err := rr.next()
			if err == io.EOF {
				eof = true
				off, line = roff, rline
				break
			}
			if err != nil {
				fmt.Fprintf(stderr, "%s: reading %s after line %d: %v (run it again to resume)\n", cmd, o.file, line, err)
				return 1
			}
			off, line = roff, rline
			batch = append(batch, row)
			if o.url != "" {
				b, _ := json.Marshal(row)
				bytesInBatch += len(b)
			}
		}
		if len(batch) == 0 && !eof {
			continue
		}
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(stderr, "%s: stopped after line %d (%d/%d rows); run it again to resume there\n", cmd, tally.Line, tally.Rows, total)
			return 1
		}
		p := &store.ImportProgress{Source: imf.source, Offset: off, Line: line, Rows: tally.Rows + int64(len(batch)), RejectsAt: rj.size, Done: eof}
		res, err := imp.send(ctx, batch, p)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(stderr, "%s: stopped after line %d (%d/%d rows); run it again to resume there\n", cmd, tally.Line, tally.Rows, total)
			} else {
				fmt.Fprintf(stderr, "%s: %v (after line %d; run it again to resume there)\n", cmd, err, tally.Line)
			}
			return 1
		}
		for _, r := range res {
			switch r.Outcome {
			case core.ImportCreated:
				tally.Imported++
			case core.ImportUpdated:
				tally.Updated++
			case core.ImportUnchanged:
				tally.Unchanged++
			default:
				tally.Rejected++
				rj.add(r.Line, r.Reason)
			}
		}
		if err := rj.flush(); err != nil {
			fmt.Fprintf(stderr, "%s: rejects file: %v\n", cmd, err)
			return 1
		}
		tally.Rows, tally.Line, tally.Offset = p.Rows, line, off
		batches++
		if o.afterBatch != nil {
			o.afterBatch(batches)
		}
		if time.Since(lastPrint) >= o.every {
			lastPrint = time.Now()
			printProgress(false)
		}
	}
	took := time.Since(began)
	rate := float64(tally.Rows-startRows) / max(took.Seconds(), 1e-9)
	where := "none rejected"
	if tally.Rejected > 0 {
		where = "rejected rows are listed in " + o.rejects
	} else if resume == nil {
		rj.f.Close()
		os.Remove(o.rejects)
	}
	fmt.Fprintf(stderr, "%s: done: %d rows in %s (%.0f rows/s): %d imported, %d updated, %d unchanged, %d rejected; %s\n",
		cmd, tally.Rows, took.Round(time.Millisecond), rate, tally.Imported, tally.Updated, tally.Unchanged, tally.Rejected, where)
	return 0
}

// openImportStore opens a standalone bridge's store and an engine on it,
// as the bridge would (region, redaction, variable TTL).
func openImportStore(cmd string, cfg config.Config, now func() time.Time, stderr io.Writer) (*core.Engine, func(), int) {
	key, err := LoadKey(cfg)
	if err != nil {
		fmt.Fprintln(stderr, cmd+": "+err.Error())
		return nil, nil, 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	redactor, err := newRedactor(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, cmd+": "+err.Error())
		return nil, nil, 2
	}
	minFree := int64(cfg.MinFreeMiB * (1 << 20))
	if minFree == 0 {
		minFree = -1
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		fmt.Fprintln(stderr, cmd+": data dir: "+err.Error())
		return nil, nil, 1
	}
	db, err := store.Open(store.Options{Dir: cfg.DataDir, EncryptionKey: key, MinFreeBytes: minFree, Logger: log, Compression: cfg.StoreCompression})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v (is the bridge running? stop it, or import through it with -url)\n", cmd, err)
		return nil, nil, 1
	}
	var memory string
	if err := db.View(func(t *store.Txn) (err error) { memory, err = t.Memory(); return err }); err != nil || memory != "" {
		db.Close()
		if err == nil {
			err = fmt.Errorf("%s holds a node of the shared memory %q: import through a running node with -url, so that every node gets the rows", cfg.DataDir, memory)
		}
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, nil, 2
	}
	eng := core.New(core.Options{Store: db, DefaultRegion: cfg.DefaultRegion, Redactor: redactor, VariableTTL: cfg.VariableTTL, Logger: log, Now: now})
	return eng, func() { db.Close() }, 0
}

type engineImporter struct{ e *core.Engine }

func (i engineImporter) progress(source string) (store.ImportProgress, bool, error) {
	return i.e.ImportProgress(source)
}
func (i engineImporter) forget(source string) error { return i.e.ForgetImport(source) }
func (i engineImporter) send(ctx context.Context, rows []core.ImportRow, p *store.ImportProgress) ([]core.ImportResult, error) {
	return i.e.Import(ctx, rows, p)
}
