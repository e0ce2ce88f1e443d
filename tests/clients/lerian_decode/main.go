// Command lerian_decode decodes one Connhub answer the way Lerian's Go clients do.
//
// Usage: lerian_decode MODEL < body.json
//
// The structs below are written from the field types of Lerian's models (fetcher v2.0.2
// pkg/model, reporter v1.1.0 pkg/model); this is our own code, not theirs. The body is decoded
// with encoding/json into the named model, so it fails exactly where Go fails (an int64 given
// 3.7, a string given a number, a time that is not RFC 3339, a UUID that is not one). Then it is
// checked strictly: Go would silently read a missing field, or a null one, as the zero value,
// so a field without `omitempty` must be present and, unless it is a pointer, slice, map or
// interface, not null. On success the decoded value is printed as JSON; on failure the reason is
// printed on stderr and the exit status is 1.
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"
)

// UUID is decoded from its text form, as github.com/google/uuid.UUID is.
type UUID [16]byte

func (u *UUID) UnmarshalText(text []byte) error {
	s := string(text)
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		s = strings.ReplaceAll(s, "-", "")
	}
	if len(s) != 32 {
		return fmt.Errorf("invalid UUID length: %d", len(text))
	}
	decoded, err := hex.DecodeString(s)
	if err != nil {
		return errors.New("invalid UUID format")
	}
	copy(u[:], decoded)
	return nil
}

func (u UUID) MarshalText() ([]byte, error) {
	h := hex.EncodeToString(u[:])
	return []byte(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]), nil
}

// fetcher pkg/model/connection.go

type SSLResponse struct {
	Mode string `json:"mode,omitempty"`
}

type ConnectionResponse struct {
	ID           UUID            `json:"id"`
	ProductName  string          `json:"productName,omitempty"`
	ConfigName   string          `json:"configName"`
	Type         string          `json:"type"`
	Host         string          `json:"host"`
	Port         int             `json:"port"`
	DatabaseName string          `json:"databaseName"`
	Schema       *string         `json:"schema,omitempty"`
	Username     string          `json:"userName"`
	SSL          *SSLResponse    `json:"ssl,omitempty"`
	Metadata     *map[string]any `json:"metadata,omitempty"`
	CreatedAt    time.Time       `json:"createdAt"`
	UpdatedAt    time.Time       `json:"updatedAt"`
}

type ConnectionTestResponse struct {
	Status    string `json:"status"`
	Message   string `json:"message"`
	LatencyMs int64  `json:"latencyMs"`
}

type TableDetails struct {
	Name   string   `json:"name"`
	Fields []string `json:"fields"`
}

type ConnectionSchemaResponse struct {
	ID           string         `json:"id"`
	ConfigName   string         `json:"configName"`
	DatabaseName string         `json:"databaseName"`
	Type         string         `json:"type"`
	Tables       []TableDetails `json:"tables"`
}

// fetcher pkg/model/pagination.go (Items is `any` there; a client reads connections from it)

type ConnectionPage struct {
	Items []ConnectionResponse `json:"items"`
	Page  int                  `json:"page,omitempty"`
	Limit int                  `json:"limit"`
	Total int                  `json:"total"`
}

// fetcher pkg/model/schema.go

type SchemaValidationError struct {
	Type         string `json:"type"`
	DataSourceID string `json:"dataSourceId"`
	Table        string `json:"table,omitempty"`
	Field        string `json:"field,omitempty"`
}

type SchemaValidationResponse struct {
	Status  string                  `json:"status"`
	Message string                  `json:"message"`
	Errors  []SchemaValidationError `json:"errors,omitempty"`
}

type SchemaValidationErrorResponse struct {
	Title   string                  `json:"title"`
	Code    string                  `json:"code"`
	Message string                  `json:"message"`
	Errors  []SchemaValidationError `json:"errors"`
}

// fetcher pkg HTTPError (the error body of every other failure)

type HTTPError struct {
	Code       string `json:"code"`
	Title      string `json:"title"`
	Message    string `json:"message"`
	EntityType string `json:"entityType,omitempty"`
	Err        any    `json:"err,omitempty"`
}

// reporter v1.1.0 pkg/model/data-source-information.go

type DataSourceInformation struct {
	ID           string `json:"id"`
	ExternalName string `json:"externalName"`
	Type         string `json:"type"`
}

type DataSourceDetails struct {
	ID           string         `json:"id"`
	ExternalName string         `json:"externalName"`
	Type         string         `json:"type"`
	Tables       []TableDetails `json:"tables"`
}

var models = map[string]func() any{
	"ConnectionResponse":            func() any { return &ConnectionResponse{} },
	"ConnectionPage":                func() any { return &ConnectionPage{} },
	"ConnectionTestResponse":        func() any { return &ConnectionTestResponse{} },
	"ConnectionSchemaResponse":      func() any { return &ConnectionSchemaResponse{} },
	"SchemaValidationResponse":      func() any { return &SchemaValidationResponse{} },
	"SchemaValidationErrorResponse": func() any { return &SchemaValidationErrorResponse{} },
	"HTTPError":                     func() any { return &HTTPError{} },
	"DataSourceList":                func() any { return &[]DataSourceInformation{} },
	"DataSourceDetails":             func() any { return &DataSourceDetails{} },
}

func main() {
	if len(os.Args) != 2 || models[os.Args[1]] == nil {
		fail(fmt.Errorf("usage: lerian_decode MODEL < body (models: %s)", strings.Join(modelNames(), ", ")))
	}
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	target := models[os.Args[1]]()
	if err := json.Unmarshal(body, target); err != nil {
		fail(err)
	}
	var raw any
	if err := json.Unmarshal(body, &raw); err != nil {
		fail(err)
	}
	if err := strict(reflect.TypeOf(target).Elem(), raw, os.Args[1]); err != nil {
		fail(err)
	}
	out, err := json.Marshal(target)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

// strict reports the first field Go would read as a zero value without saying so.
func strict(t reflect.Type, raw any, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice:
		items, _ := raw.([]any)
		for index, item := range items {
			if err := strict(t.Elem(), item, fmt.Sprintf("%s[%d]", path, index)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		object, ok := raw.(map[string]any)
		if !ok || t == reflect.TypeOf(time.Time{}) {
			return nil
		}
		for i := 0; i < t.NumField(); i++ {
			field := t.Field(i)
			name, options, _ := strings.Cut(field.Tag.Get("json"), ",")
			value, present := object[name]
			where := path + "." + name
			if !strings.Contains(options, "omitempty") {
				if !present {
					return fmt.Errorf("%s: missing (Go would read the zero value)", where)
				}
				if value == nil && !nullable(field.Type) {
					return fmt.Errorf("%s: null (Go would read the zero value)", where)
				}
			}
			if err := strict(field.Type, value, where); err != nil {
				return err
			}
		}
	}
	return nil
}

func nullable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return true
	}
	return false
}

func modelNames() []string {
	names := make([]string, 0, len(models))
	for name := range models {
		names = append(names, name)
	}
	return names
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
