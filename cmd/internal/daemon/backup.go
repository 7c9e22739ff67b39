package daemon

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/core/store"
)

// storeCommand runs "backup" (the store to a file, as Badger's backup
// stream) or "restore" (a backup into an empty data dir). Run backup while
// the bridge is stopped, or against a copy: Badger allows one process.
func storeCommand(ctx context.Context, name, cmd string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "backup file ("+map[string]string{"backup": "written; - for stdout", "restore": "read; - for stdin"}[cmd]+")")
	rest := []string{}
	// the remaining flags are the usual configuration (-data-dir, -config, ...)
	for i := 0; i < len(args); i++ {
		if args[i] == "-file" || args[i] == "--file" {
			if i+1 < len(args) {
				*file = args[i+1]
				i++
			}
			continue
		}
		rest = append(rest, args[i])
	}
	cfg, err := config.Load(name+" "+cmd, rest, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, name+" "+cmd+": -file is required")
		return 2
	}
	key, err := LoadKey(cfg)
	if err != nil {
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 2
	}
	if cmd == "restore" {
		if entries, _ := os.ReadDir(cfg.DataDir); len(entries) > 0 {
			fmt.Fprintf(stderr, "%s restore: data dir %s is not empty; restore into a new directory\n", name, cfg.DataDir)
			return 2
		}
	}
	db, err := store.Open(store.Options{Dir: cfg.DataDir, EncryptionKey: key})
	if err != nil {
		fmt.Fprintln(stderr, name+": "+err.Error())
		return 1
	}
	defer db.Close()
	switch cmd {
	case "backup":
		out := stdout
		if *file != "-" {
			f, err := os.OpenFile(*file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				fmt.Fprintln(stderr, name+" backup: "+err.Error())
				return 1
			}
			defer f.Close()
			out = f
		}
		w := bufio.NewWriter(out)
		since, err := db.Badger().Backup(w, 0)
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			fmt.Fprintln(stderr, name+" backup: "+err.Error())
			return 1
		}
		fmt.Fprintf(stderr, "%s backup: wrote the store up to version %d to %s\n", name, since, *file)
	case "restore":
		in := os.Stdin
		if *file != "-" {
			f, err := os.Open(*file)
			if err != nil {
				fmt.Fprintln(stderr, name+" restore: "+err.Error())
				return 1
			}
			defer f.Close()
			in = f
		}
		if err := db.Badger().Load(bufio.NewReader(in), 256); err != nil {
			fmt.Fprintln(stderr, name+" restore: "+err.Error())
			return 1
		}
		if err := db.Sync(); err != nil {
			fmt.Fprintln(stderr, name+" restore: "+err.Error())
			return 1
		}
		fmt.Fprintf(stderr, "%s restore: loaded %s into %s\n", name, *file, cfg.DataDir)
	}
	_ = ctx
	return 0
}
