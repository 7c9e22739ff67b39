package daemon

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sticky-cc/sticky/cmd/internal/config"
	"github.com/sticky-cc/sticky/core/store"
)

// storeCommand runs "backup" (the store to a file, as Badger's backup
// stream) or "restore" (a backup into an empty data dir). Run backup while
// the bridge is stopped, or against a copy: Badger allows one process.
func storeCommand(ctx context.Context, name, cmd string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", map[string]string{
		"backup": "backup file to write; - for stdout", "restore": "backup file to read; - for stdin",
		"rotate-key": "file holding the new key (raw, hex or base64)"}[cmd])
	rest := []string{}
	// the remaining flags are the usual configuration (-data-dir, -config, ...)
	for i := 0; i < len(args); i++ {
		if args[i] == "-file" || args[i] == "--file" || args[i] == "-new-key-file" || args[i] == "--new-key-file" {
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
	if cmd == "rotate-key" {
		return rotateKey(name, cfg, key, *file, stderr)
	}
	if cmd == "restore" {
		if entries, _ := os.ReadDir(cfg.DataDir); len(entries) > 0 {
			fmt.Fprintf(stderr, "%s restore: data dir %s is not empty; restore into a new directory\n", name, cfg.DataDir)
			return 2
		}
	}
	db, err := store.Open(store.Options{Dir: cfg.DataDir, EncryptionKey: key, MinFreeBytes: -1, Compression: cfg.StoreCompression})
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

// rotateKey re-encrypts the store's key registry (its data keys) under a
// new master key. The bridge must be stopped; afterwards start it with the
// new key. The data is not rewritten: the master key protects the data keys.
func rotateKey(name string, cfg config.Config, oldKey []byte, newKeyFile string, stderr io.Writer) int {
	raw, err := os.ReadFile(newKeyFile)
	if err != nil {
		fmt.Fprintln(stderr, name+" rotate-key: "+err.Error())
		return 2
	}
	newKey, ok := keyBytes(raw)
	if !ok {
		fmt.Fprintln(stderr, name+" rotate-key: the new key must be 16, 24 or 32 bytes (raw, hex or base64)")
		return 2
	}
	opt := badger.KeyRegistryOptions{Dir: cfg.DataDir, EncryptionKey: oldKey, EncryptionKeyRotationDuration: 10 * 24 * time.Hour}
	kr, err := badger.OpenKeyRegistry(opt)
	if err != nil {
		fmt.Fprintln(stderr, name+" rotate-key: opening the key registry with the current key: "+err.Error())
		return 1
	}
	defer kr.Close()
	opt.EncryptionKey = newKey
	if err := badger.WriteKeyRegistry(kr, opt); err != nil {
		fmt.Fprintln(stderr, name+" rotate-key: "+err.Error())
		return 1
	}
	fmt.Fprintf(stderr, "%s rotate-key: %s now opens with the new key; point STICKY_ENCRYPTION_KEY_FILE at it\n", name, cfg.DataDir)
	return 0
}
