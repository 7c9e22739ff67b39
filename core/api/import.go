package api

import (
	"encoding/json"
	"net/http"

	"github.com/sticky-cc/sticky/core"
	"github.com/sticky-cc/sticky/core/store"
)

// MaxImportBodyBytes bounds a POST /v1/import body: a batch must fit one
// entry of a cluster's shared log (1 MiB).
const MaxImportBodyBytes = 1 << 20

// ImportBatch is the body of POST /v1/import: rows of a CRM export as the
// import subcommand mapped them, and, if Source is set, the place in the
// file after them, recorded with the rows so that a stopped import
// resumes there (GET /v1/import/{source}).
type ImportBatch struct {
	Source    string           `json:"source,omitempty"`
	Offset    int64            `json:"offset,omitempty"`
	Line      int64            `json:"line,omitempty"`
	RowsDone  int64            `json:"rows_done,omitempty"`
	RejectsAt int64            `json:"rejects_at,omitempty"`
	Done      bool             `json:"done,omitempty"`
	Rows      []core.ImportRow `json:"rows"`
}

// ImportReply answers POST /v1/import: what became of each row, in order.
type ImportReply struct {
	Results []core.ImportResult `json:"results"`
}

func (s *Server) importRows(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		Fail(w, http.StatusUnsupportedMediaType, "send Content-Type: application/json")
		return
	}
	body, ok := ReadLimited(w, r, MaxImportBodyBytes)
	if !ok {
		return
	}
	var b ImportBatch
	if err := json.Unmarshal(body, &b); err != nil {
		Fail(w, http.StatusBadRequest, "body must be an import batch: {\"rows\": [...]}: "+err.Error())
		return
	}
	var p *store.ImportProgress
	if b.Source == "" && (b.Offset != 0 || b.Line != 0 || b.RowsDone != 0 || b.RejectsAt != 0 || b.Done) {
		Fail(w, http.StatusBadRequest, "offset, line, rows_done, rejects_at and done describe a source: give source too")
		return
	}
	if b.Source != "" {
		p = &store.ImportProgress{Source: b.Source, Offset: b.Offset, Line: b.Line, Rows: b.RowsDone, RejectsAt: b.RejectsAt, Done: b.Done}
	}
	res, err := s.engine.Import(r.Context(), b.Rows, p)
	if res == nil {
		res = []core.ImportResult{}
	}
	s.reply(w, r, ImportReply{Results: res}, err)
}

func (s *Server) importProgress(w http.ResponseWriter, r *http.Request) {
	p, ok, err := s.engine.ImportProgress(r.PathValue("source"))
	if err == nil && !ok {
		Fail(w, http.StatusNotFound, "no import of this source is under way here")
		return
	}
	if p.Rejects == nil {
		p.Rejects = []store.ImportReject{}
	}
	s.reply(w, r, p, err)
}
