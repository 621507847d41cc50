// Command varlink-interop drives a running bitnetd with the Varlink library
// github.com/varlink/go (Debian: golang-github-varlink-go-dev), a Varlink
// implementation that shares no code with bitnetd, and parses the interface
// definitions bitnetd serves with that library's idl package.
//
// It exits 1 on the first check that fails, naming it on stderr. On success
// it prints one JSON object on stdout for the test around it
// (tests/integration/test_go_interop.py), which compares what it saw with
// bitnet-run and with the project's own grammar checker:
//
//	{"info": ..., "generate": {"job", "model", "pieces", "text", "final"},
//	 "interfaces": {NAME: {"methods": {M: [[in...], [out...]]},
//	                       "errors": {E: [fields...]}, "types": {T: [kind, [fields...]]}}},
//	 "idl_lowered_interface_names": [NAME...]}
//
// Usage: varlink-interop -socket PATH -protocol DIR -pid PID [-prompt TEXT] [-n N]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/varlink/go/varlink"
	"github.com/varlink/go/varlink/idl"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "varlink-interop: FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func ok(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "ok: "+format+"\n", args...)
}

type info struct {
	Vendor     string   `json:"vendor"`
	Product    string   `json:"product"`
	Version    string   `json:"version"`
	URL        string   `json:"url"`
	Interfaces []string `json:"interfaces"`
}

type status struct {
	Version     string `json:"version"`
	Pid         int    `json:"pid"`
	Connections int    `json:"connections"`
	Jobs        int    `json:"jobs"`
	Models      []struct {
		Name   string `json:"name"`
		State  string `json:"state"`
		Kernel string `json:"kernel"`
	} `json:"models"`
	Limits map[string]int64 `json:"limits"`
}

type kernel struct {
	ID        string `json:"id"`
	Format    string `json:"format"`
	Available bool   `json:"available"`
}

type capabilities struct {
	Kernels    []kernel           `json:"kernels"`
	BestKernel map[string]*string `json:"best_kernel"`
	CPU        struct {
		SimdActive string `json:"simd_active"`
	} `json:"cpu"`
}

type usage struct {
	PromptTokens     int     `json:"prompt_tokens"`
	GeneratedTokens  int     `json:"generated_tokens"`
	PrefillMs        float64 `json:"prefill_ms"`
	DecodeMs         float64 `json:"decode_ms"`
	DecodeTokensPerS float64 `json:"decode_tokens_per_s"`
	QueueMs          float64 `json:"queue_ms"`
}

// One reply of Generate; which fields are set depends on its place in the stream.
type generateReply struct {
	Job          *int64  `json:"job"`
	Model        *string `json:"model"`
	Text         *string `json:"text"`
	FinishReason *string `json:"finish_reason"`
	Usage        *usage  `json:"usage"`
	Backend      *string `json:"backend"`
	Kernel       *string `json:"kernel"`
	Error        *string `json:"error"`
}

type generateResult struct {
	Job    int64         `json:"job"`
	Model  string        `json:"model"`
	Pieces int           `json:"pieces"`
	Text   string        `json:"text"`
	Final  generateReply `json:"final"`
}

// generate streams io.bitnetd.Inference.Generate with "more" and checks the
// shape of the stream: the job id first, then text, then the finish reason
// and usage in the one reply without "continues".
func generate(ctx context.Context, c *varlink.Connection, prompt string, n int) generateResult {
	params := map[string]interface{}{"prompt": prompt, "max_tokens": n}
	receive, err := c.Send(ctx, "io.bitnetd.Inference.Generate", params, varlink.More)
	if err != nil {
		fail("Generate: send: %v", err)
	}
	var res generateResult
	var text strings.Builder
	for i := 0; ; i++ {
		var r generateReply
		flags, err := receive(ctx, &r)
		if err != nil {
			fail("Generate: reply %d: %v", i, err)
		}
		last := flags&varlink.Continues == 0
		switch {
		case i == 0:
			if r.Job == nil || *r.Job <= 0 || r.Model == nil || last {
				fail("Generate: the first reply is not {job, model} with continues: %+v", r)
			}
			res.Job, res.Model = *r.Job, *r.Model
		case !last:
			if r.Text == nil || r.FinishReason != nil || r.Usage != nil {
				fail("Generate: reply %d is not a text piece: %+v", i, r)
			}
			text.WriteString(*r.Text)
			res.Pieces++
		default:
			if r.Job == nil || *r.Job != res.Job || r.FinishReason == nil || r.Usage == nil ||
				r.Backend == nil {
				fail("Generate: the last reply lacks job, finish_reason, usage or backend: %+v", r)
			}
			if r.Text != nil { // text a slow reader had not taken yet
				text.WriteString(*r.Text)
			}
			res.Text = text.String()
			res.Final = r
			return res
		}
	}
}

// varlinkError returns the Varlink error name and parameters of err.
func varlinkError(err error) (string, map[string]interface{}) {
	var ve *varlink.Error
	if !errors.As(err, &ve) {
		return "", nil
	}
	params := map[string]interface{}{}
	if raw, isRaw := ve.Parameters.(*json.RawMessage); isRaw && raw != nil {
		if json.Unmarshal(*raw, &params) != nil {
			return ve.Name, nil
		}
	}
	return ve.Name, params
}

func typeString(t *idl.Type) string {
	if t == nil {
		return "<nil>"
	}
	switch t.Kind {
	case idl.TypeBool:
		return "bool"
	case idl.TypeInt:
		return "int"
	case idl.TypeFloat:
		return "float"
	case idl.TypeString:
		return "string"
	case idl.TypeObject:
		return "object"
	case idl.TypeArray:
		return "[]" + typeString(t.ElementType)
	case idl.TypeMaybe:
		return "?" + typeString(t.ElementType)
	case idl.TypeMap:
		return "[string]" + typeString(t.ElementType)
	case idl.TypeAlias:
		return t.Alias
	case idl.TypeEnum, idl.TypeStruct:
		parts := make([]string, 0, len(t.Fields))
		for _, f := range t.Fields {
			if t.Kind == idl.TypeEnum {
				parts = append(parts, f.Name)
			} else {
				parts = append(parts, f.Name+": "+typeString(f.Type))
			}
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("<kind %d>", t.Kind)
}

func fieldNames(t *idl.Type) []string {
	names := []string{}
	if t != nil {
		for _, f := range t.Fields {
			names = append(names, f.Name)
		}
	}
	return names
}

// members is what the test compares with its own parser: member names and
// field names (the grammar checker does not record field types).
type members struct {
	Methods map[string][2][]string    `json:"methods"`
	Errors  map[string][]string       `json:"errors"`
	Types   map[string][2]interface{} `json:"types"`
	// Every member with its full type, for comparing two parses here.
	Typed map[string]string `json:"-"`
}

func describe(d *idl.IDL) members {
	m := members{Methods: map[string][2][]string{}, Errors: map[string][]string{},
		Types: map[string][2]interface{}{}, Typed: map[string]string{}}
	for _, meth := range d.Methods {
		m.Methods[meth.Name] = [2][]string{fieldNames(meth.In), fieldNames(meth.Out)}
		m.Typed["method "+meth.Name] = typeString(meth.In) + " -> " + typeString(meth.Out)
	}
	for _, e := range d.Errors {
		m.Errors[e.Name] = fieldNames(e.Type)
		m.Typed["error "+e.Name] = typeString(e.Type)
	}
	for _, a := range d.Aliases {
		kind := "struct"
		if a.Type != nil && a.Type.Kind == idl.TypeEnum {
			kind = "enum"
		}
		m.Types[a.Name] = [2]interface{}{kind, fieldNames(a.Type)}
		m.Typed["type "+a.Name] = typeString(a.Type)
	}
	return m
}

var interfaceLine = regexp.MustCompile(`(?m)^interface[ \t]+(\S+)`)

// parseIDL parses a definition with the idl package. Version 0.4.0 of the
// package (Debian bookworm's) follows the Varlink grammar as it was before
// 2021, when interface names were all lower case; the grammar now allows
// upper case (systemd's io.systemd.UserDatabase, bitnetd's io.bitnetd.Query)
// and later versions of the package accept it. With an old package the
// definition is parsed a second time with only its interface name lowered,
// and lowered reports that this happened. Everything else in the text -
// types, methods, errors, comments - is parsed as it is.
func parseIDL(text string) (d *idl.IDL, lowered bool, err error) {
	d, err = idl.New(text)
	if err == nil {
		return d, false, nil
	}
	m := interfaceLine.FindStringSubmatchIndex(text)
	if m == nil {
		return nil, false, err
	}
	name := text[m[2]:m[3]]
	if strings.ToLower(name) == name {
		return nil, false, err
	}
	d2, err2 := idl.New(text[:m[2]] + strings.ToLower(name) + text[m[3]:])
	if err2 != nil {
		return nil, false, fmt.Errorf("%v; with the interface name in lower case: %v", err, err2)
	}
	d2.Name = name
	return d2, true, nil
}

func sameTyped(a, b map[string]string) string {
	keys := []string{}
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, seen := a[k]; !seen {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if a[k] != b[k] {
			return fmt.Sprintf("%s: served %q, file %q", k, a[k], b[k])
		}
	}
	return ""
}

func main() {
	socket := flag.String("socket", "", "bitnetd's socket")
	protocolDir := flag.String("protocol", "", "the directory of bitnetd's .varlink files")
	pid := flag.Int("pid", 0, "bitnetd's process id")
	prompt := flag.String("prompt", "Hello world", "prompt of the streamed generation")
	n := flag.Int("n", 24, "tokens to generate")
	flag.Parse()
	if *socket == "" || *protocolDir == "" || *pid == 0 {
		fmt.Fprintln(os.Stderr, "usage: varlink-interop -socket PATH -protocol DIR -pid PID [-prompt TEXT] [-n N]")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := varlink.NewConnection(ctx, "unix:"+*socket)
	if err != nil {
		fail("connect to %s: %v", *socket, err)
	}
	defer c.Close()

	// org.varlink.service.GetInfo, through the library's own helper.
	var in info
	if err := c.GetInfo(ctx, &in.Vendor, &in.Product, &in.Version, &in.URL, &in.Interfaces); err != nil {
		fail("GetInfo: %v", err)
	}
	if in.Vendor != "bitnetd" || in.Version == "" || len(in.Interfaces) == 0 ||
		in.Interfaces[0] != "org.varlink.service" {
		fail("GetInfo: unexpected %+v", in)
	}
	ok("GetInfo: %s %s, interfaces %v", in.Product, in.Version, in.Interfaces)

	// io.bitnetd.Query.GetStatus.
	var st status
	if err := c.Call(ctx, "io.bitnetd.Query.GetStatus", nil, &st); err != nil {
		fail("GetStatus: %v", err)
	}
	if st.Pid != *pid || st.Version != in.Version || st.Connections < 1 ||
		len(st.Models) == 0 || st.Models[0].State != "ready" || st.Limits["max_message_size"] <= 0 {
		fail("GetStatus: unexpected %+v (daemon pid %d, version %s)", st, *pid, in.Version)
	}
	ok("GetStatus: pid %d, model %s (%s)", st.Pid, st.Models[0].Name, st.Models[0].Kernel)

	// io.bitnetd.Query.GetCapabilities: the kernel registry as the daemon sees it.
	var caps capabilities
	if err := c.Call(ctx, "io.bitnetd.Query.GetCapabilities", nil, &caps); err != nil {
		fail("GetCapabilities: %v", err)
	}
	available := map[string]bool{}
	for _, k := range caps.Kernels {
		available[k.ID] = k.Available
	}
	best := caps.BestKernel["i2s"]
	if !available["i2s_qk256.scalar"] || best == nil || !available[*best] || caps.CPU.SimdActive == "" {
		fail("GetCapabilities: scalar kernel or best i2s kernel missing: %+v", caps)
	}
	if *best != st.Models[0].Kernel {
		fail("GetCapabilities: best i2s kernel %s, but the model runs %s", *best, st.Models[0].Kernel)
	}
	ok("GetCapabilities: %d kernels, best i2s %s, SIMD %s", len(caps.Kernels), *best, caps.CPU.SimdActive)

	// Streaming io.bitnetd.Inference.Generate.
	gen := generate(ctx, c, *prompt, *n)
	u := gen.Final.Usage
	if *gen.Final.FinishReason != "length" || u.GeneratedTokens != *n || u.PromptTokens <= 0 ||
		gen.Pieces == 0 || gen.Text == "" || *gen.Final.Kernel != st.Models[0].Kernel {
		fail("Generate: unexpected end %+v (usage %+v) after %d pieces", gen.Final, *u, gen.Pieces)
	}
	ok("Generate: job %d, %d pieces, %d tokens, finish %s", gen.Job, gen.Pieces,
		u.GeneratedTokens, *gen.Final.FinishReason)

	// Errors come back as the library's error values.
	err = c.Call(ctx, "io.bitnetd.Inference.Generate", map[string]interface{}{"prompt": "x"}, nil)
	if name, _ := varlinkError(err); name != "org.varlink.service.ExpectedMore" {
		fail("Generate without more: got %v", err)
	}
	err = c.Call(ctx, "io.bitnetd.Inference.Cancel", map[string]interface{}{"job": 987654}, nil)
	if name, params := varlinkError(err); name != "io.bitnetd.Inference.JobNotFound" ||
		params["job"] != float64(987654) {
		fail("Cancel of an unknown job: got %v %v", name, params)
	}
	err = c.Call(ctx, "io.bitnetd.Query.NoSuchMethod", nil, nil)
	var mnf *varlink.MethodNotFound
	if !errors.As(err, &mnf) || mnf.Method != "io.bitnetd.Query.NoSuchMethod" {
		fail("unknown method: got %#v", err)
	}
	err = c.Call(ctx, "io.bitnetd.Query.GetStatus", map[string]interface{}{"verbose": true}, nil)
	var ip *varlink.InvalidParameter
	if !errors.As(err, &ip) || ip.Parameter != "verbose" {
		fail("unknown parameter: got %#v", err)
	}
	ok("errors: ExpectedMore, JobNotFound, MethodNotFound, InvalidParameter")

	// Every interface served parses with the idl package, and equals the
	// definition file of the same name in protocol/.
	files, err := filepath.Glob(filepath.Join(*protocolDir, "*.varlink"))
	if err != nil || len(files) == 0 {
		fail("no .varlink files in %s", *protocolDir)
	}
	served := map[string]bool{}
	for _, name := range in.Interfaces {
		served[name] = true
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".varlink")
		if !served[name] {
			fail("%s is not served (GetInfo lists %v)", f, in.Interfaces)
		}
	}
	out := map[string]members{}
	loweredNames := []string{}
	for _, name := range in.Interfaces {
		desc, err := c.GetInterfaceDescription(ctx, name)
		if err != nil {
			fail("GetInterfaceDescription(%s): %v", name, err)
		}
		parsed, lowered, err := parseIDL(desc)
		if err != nil {
			fail("the idl package cannot parse %s as served: %v", name, err)
		}
		if lowered {
			loweredNames = append(loweredNames, name)
		}
		if parsed.Name != name {
			fail("%s: the description names interface %s", name, parsed.Name)
		}
		path := filepath.Join(*protocolDir, name+".varlink")
		text, err := os.ReadFile(path)
		if err != nil {
			fail("%s is served but %v", name, err)
		}
		fromFile, _, err := parseIDL(string(text))
		if err != nil {
			fail("the idl package cannot parse %s: %v", path, err)
		}
		if diff := sameTyped(describe(parsed).Typed, describe(fromFile).Typed); diff != "" {
			fail("%s differs from %s: %s", name, path, diff)
		}
		if desc != string(text) {
			fail("%s: the served text is not the text of %s", name, path)
		}
		out[name] = describe(parsed)
		ok("idl: %s: %d methods, %d errors, %d types", name, len(parsed.Methods),
			len(parsed.Errors), len(parsed.Aliases))
	}

	if len(loweredNames) > 0 {
		fmt.Fprintf(os.Stderr, "note: this idl package predates upper-case interface names; "+
			"parsed %v with the name on the interface line in lower case\n", loweredNames)
	}
	result := map[string]interface{}{"info": in, "generate": gen, "interfaces": out,
		"idl_lowered_interface_names": loweredNames}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(result); err != nil {
		fail("writing the result: %v", err)
	}
}
