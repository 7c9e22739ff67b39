package daemon

import "github.com/sticky-cc/sticky/core/store"

func openWith(dir string, key []byte) (*store.DB, bool, error) {
	db, err := store.Open(store.Options{Dir: dir, EncryptionKey: key})
	if err != nil {
		return nil, false, err
	}
	db.Close()
	return db, true, nil
}
