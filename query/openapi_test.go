package query

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIMatchesRoutes keeps the document honest: every route Gin has
// is documented, and every documented operation is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	s := unitServer(t, Config{})
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	param := regexp.MustCompile(`\{([a-z_]+)\}`)
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+param.ReplaceAllString(path, ":$1"))
		}
	}
	var routed []string
	for _, r := range s.engine.Routes() {
		routed = append(routed, r.Method+" "+r.Path)
	}
	slices.Sort(documented)
	slices.Sort(routed)
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			t.Errorf("openapi.json documents %s, which is not routed", d)
		}
	}
	// Every $ref must resolve, or tools reject the whole document.
	var raw map[string]any
	_ = json.Unmarshal(OpenAPI(), &raw)
	refs := regexp.MustCompile(`"\$ref":\s*"#/([^"]+)"`).FindAllStringSubmatch(string(OpenAPI()), -1)
	for _, m := range refs {
		var node any = raw
		for _, part := range strings.Split(m[1], "/") {
			obj, _ := node.(map[string]any)
			node = obj[part]
		}
		if node == nil {
			t.Errorf("$ref #/%s does not resolve", m[1])
		}
	}
	r := serve(t, s, "GET", "/openapi.json", nil, "")
	if r.status != 200 || string(r.body) != string(OpenAPI()) {
		t.Fatalf("/openapi.json: %d", r.status)
	}
}

// TestOpenAPILimits checks that the limits the document states are the ones
// the code enforces.
func TestOpenAPILimits(t *testing.T) {
	t.Parallel()
	doc := string(OpenAPI())
	for _, want := range []string{
		`"maximum": 1000`, `"default": 100`, `"maxLength": 128`, `"maxLength": 256`, `"maxLength": 2048`,
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("openapi.json lacks %s", want)
		}
	}
	if MaxLimit != 1000 || DefaultLimit != 100 || maxCursorChars != 2048 {
		t.Fatal("limits changed: update openapi.json and docs/api.md")
	}
}
