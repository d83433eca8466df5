package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"
)

// Format keys with a meaning of their own, as in the docker CLI.
const (
	tableFormatKey = "table"
	jsonFormatKey  = "json"
	quietFormat    = "{{.ID}}"
)

// templateFuncs are the functions docker offers in every --format template.
var templateFuncs = template.FuncMap{
	"json": func(v any) string {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		return strings.TrimSpace(buf.String())
	},
	"split": strings.Split,
	"join":  strings.Join,
	"title": titleCase,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"pad": func(s string, prefix, suffix int) string {
		if s == "" {
			return s
		}
		return strings.Repeat(" ", prefix) + s + strings.Repeat(" ", suffix)
	},
	"truncate": func(s string, n int) string {
		if len(s) < n {
			return s
		}
		return s[:n]
	},
}

// headerFuncs replace templateFuncs when a table header is rendered, so the
// column names come out unchanged.
var headerFuncs = template.FuncMap{
	"json":     func(v string) string { return v },
	"split":    func(v, _ string) string { return v },
	"join":     func(v, _ string) string { return v },
	"title":    func(v string) string { return v },
	"lower":    func(v string) string { return v },
	"upper":    func(v string) string { return v },
	"truncate": func(v string, _ int) string { return v },
}

// titleCase upper-cases the first letter of each word (ASCII use only).
func titleCase(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		defer func() { prev = r }()
		if unicode.IsSpace(prev) || prev == '-' || prev == '_' {
			return unicode.ToUpper(r)
		}
		return r
	}, s)
}

func parseTemplate(format string) (*template.Template, error) {
	t, err := template.New("").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return t, nil
}

// listFormat picks the template of an ls command from --format and -q,
// as docker's NewFormat does.
func listFormat(format string, quiet bool, defaultTable string) string {
	switch format {
	case "", tableFormatKey:
		if quiet {
			return quietFormat
		}
		return defaultTable
	}
	return format
}

// writeList renders rows with format the way docker's formatter.Context
// does: "table ..." formats get a header row and aligned columns, "json"
// prints one JSON object per row, anything else is a Go template per row.
func writeList[T any](w io.Writer, format string, header map[string]string, rows []T) error {
	isTable := strings.HasPrefix(format, tableFormatKey)
	final := format
	switch {
	case isTable:
		final = final[len(tableFormatKey):]
	case format == jsonFormatKey:
		final = "{{json .}}"
	}
	final = strings.Trim(final, " ")
	final = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(final)

	tmpl, err := parseTemplate(final)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	for _, r := range rows {
		if err := tmpl.Execute(&body, r); err != nil {
			return fmt.Errorf("template parsing error: %w", err)
		}
		body.WriteByte('\n')
	}
	if !isTable {
		_, err := body.WriteTo(w)
		return err
	}
	tw := tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
	var head bytes.Buffer
	// A header template that cannot render (e.g. .Label "x" on the header
	// map) leaves what it rendered so far, as docker does.
	_ = tmpl.Funcs(headerFuncs).Execute(&head, header)
	head.WriteByte('\n')
	if _, err := head.WriteTo(tw); err != nil {
		return err
	}
	if _, err := body.WriteTo(tw); err != nil {
		return err
	}
	return tw.Flush()
}

// inspectRenderError lists the items an inspect template could not render.
type inspectRenderError struct{ msgs []string }

func (e *inspectRenderError) Error() string { return strings.Join(e.msgs, "\n") }

// writeInspect prints items as docker's inspect does: without a format an
// indented JSON array, with "json" the same array on one line; with a
// template, the template once per item, tried on the typed value first and
// then on the raw JSON (so {{.Id}} works too). Items the template cannot
// render are left out and reported in an *inspectRenderError after the
// others are printed; when nothing rendered, one empty line is printed.
func writeInspect[T any](w io.Writer, format string, items []T) error {
	switch format {
	case "", jsonFormatKey:
		if len(items) == 0 {
			_, err := io.WriteString(w, "[]\n")
			return err
		}
		raw, err := json.Marshal(items)
		if err != nil {
			return fmt.Errorf("encode inspect output: %w", err)
		}
		var buf bytes.Buffer
		if format == jsonFormatKey {
			buf.Write(raw)
		} else if err := json.Indent(&buf, raw, "", "    "); err != nil {
			return fmt.Errorf("indent inspect output: %w", err)
		}
		buf.WriteByte('\n')
		_, err = buf.WriteTo(w)
		return err
	}
	tmpl, err := parseTemplate(format)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	var failed []string
	for _, it := range items {
		var one bytes.Buffer
		if err := tmpl.Execute(&one, it); err != nil {
			one.Reset()
			if err := executeRaw(tmpl, &one, it); err != nil {
				failed = append(failed, err.Error())
				continue
			}
		}
		out.Write(one.Bytes())
		out.WriteByte('\n')
	}
	if out.Len() == 0 {
		out.WriteByte('\n')
	}
	if _, err := out.WriteTo(w); err != nil {
		return err
	}
	if len(failed) > 0 {
		return &inspectRenderError{msgs: failed}
	}
	return nil
}

func executeRaw(tmpl *template.Template, w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("unable to read inspect data: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("unable to read inspect data: %w", err)
	}
	strict, err := tmpl.Clone()
	if err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	if err := strict.Option("missingkey=error").Execute(w, raw); err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	return nil
}

// jsonFields is the {{json .}} of a list row: its fields as strings.
func jsonFields(m map[string]string) ([]byte, error) {
	return json.Marshal(m)
}

// joinLabels renders labels as sorted k=v pairs separated by commas.
func joinLabels(labels map[string]string) string {
	kv := make([]string, 0, len(labels))
	for k, v := range labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// naturalLess orders strings with embedded numbers numerically ("n2" < "n10").
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		ca, cb := a[0], b[0]
		if isDigit(ca) && isDigit(cb) {
			na, ra := leadingDigits(a)
			nb, rb := leadingDigits(b)
			ta, tb := strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(ta) != len(tb) {
				return len(ta) < len(tb)
			}
			if ta != tb {
				return ta < tb
			}
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			a, b = ra, rb
			continue
		}
		if ca != cb {
			return ca < cb
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}
