package gateway

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// The model list answers GET /v1/models and GET /v1/models/{id} as
// OpenAI does, with the aliases this gateway routes (each route's alias):
// SDKs and tools that list models before calling one then find them.
// The real model names behind an alias are not listed: which variant a
// user gets is the experiment's business.

// modelList is built with each snapshot, so a request only writes bytes.
type modelList struct {
	all []byte            // the list's JSON
	one map[string][]byte // each model's JSON, by id
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// newModelList lists aliases, sorted, as created at created (the time
// the configuration that routes them was loaded: the config has no
// creation time of its own).
func newModelList(aliases []string, created int64) modelList {
	sort.Strings(aliases)
	l := modelList{one: make(map[string][]byte, len(aliases))}
	objs := make([]modelObject, 0, len(aliases))
	for _, a := range aliases {
		o := modelObject{ID: a, Object: "model", Created: created, OwnedBy: "abgate"}
		objs = append(objs, o)
		l.one[a], _ = json.Marshal(o) // plain strings and ints always marshal
	}
	l.all, _ = json.Marshal(struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{"list", objs})
	return l
}

func writeJSON(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (h *Handler) listModels(c *gin.Context) {
	writeJSON(c.Writer, h.snap.Load().models.all)
}

// getModel serves /v1/models/*id: a catch-all, since aliases may
// contain '/' (validation allows "org/model").
func (h *Handler) getModel(c *gin.Context) {
	id := strings.TrimPrefix(c.Param("id"), "/")
	if id == "" {
		h.listModels(c) // "/v1/models/"
		return
	}
	b, ok := h.snap.Load().models.one[id]
	if !ok {
		writeError(c.Writer, http.StatusNotFound, "invalid_request_error", "model", "model_not_found",
			"The model `"+id+"` does not exist or is not routed by this gateway.")
		return
	}
	writeJSON(c.Writer, b)
}
