/*
 * client/cmd_inspect.c - `bitnetctl inspect FILE`: what a GGUF model file
 * holds and whether bitnetd can run it, read locally (no daemon).
 *
 * Exit 0 when the file is a valid model bitnetd can load, 1 when it is not
 * (the reason on stderr, and in the JSON as "error"), 2 for usage errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "bitnet/kernels.h"
#include "client/ctl.h"
#include "engine/gguf.h"
#include "engine/model_meta.h"

/* Tensors listed in the human output before "... N more". */
#define INSPECT_HUMAN_TENSORS 12

/*
 * Copies len bytes of s into out as valid UTF-8: well-formed sequences are
 * kept, every other byte (and control characters) becomes \xNN. Names in
 * GGUF files are bytes, not necessarily UTF-8 (docs/formats.md).
 */
static void escape_bytes(const char *s, size_t len, char *out, size_t out_len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < out_len;) {
        unsigned c = p[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        bool ok = n > 0 && i + n <= len && !(c < 0x20 || c == 0x7f) && c != 0xc0 && c != 0xc1;
        for (size_t k = 1; ok && k < n; k++)
            ok = (p[i + k] & 0xc0) == 0x80;
        if (ok && o + n < out_len) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        } else {
            o += (size_t)snprintf(out + o, out_len - o, "\\x%02x", c);
            i += 1;
        }
    }
    out[o < out_len ? o : out_len - 1] = '\0';
}

static void escape_cstr(const char *s, char *out, size_t out_len)
{
    escape_bytes(s, strlen(s), out, out_len);
}

static void human_bytes(uint64_t n, char *buf, size_t len)
{
    if (n >= 1000000000ull)
        snprintf(buf, len, "%.2f GB", (double)n / 1e9);
    else if (n >= 1000000ull)
        snprintf(buf, len, "%.2f MB", (double)n / 1e6);
    else if (n >= 1000ull)
        snprintf(buf, len, "%.1f kB", (double)n / 1e3);
    else
        snprintf(buf, len, "%llu B", (unsigned long long)n);
}

static void shape_text(const gguf_tensor *t, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (uint32_t d = 0; d < t->n_dims && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", d ? ", " : "", (long long)t->ne[d]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* The tokenizer summary: model, pre, sizes and special ids. */
static json_t *tokenizer_json(const gguf_file *f)
{
    json_t *o = json_object();
    const char *s;
    size_t len;
    char buf[256];
    static const char *const str_keys[][2] = {{"tokenizer.ggml.model", "model"},
                                              {"tokenizer.ggml.pre", "pre"}};
    for (size_t i = 0; i < 2; i++) {
        if (gguf_get_str(f, str_keys[i][0], &s, &len) == 0) {
            escape_bytes(s, len, buf, sizeof(buf));
            json_object_set_new(o, str_keys[i][1], json_string(buf));
        } else {
            json_object_set_new(o, str_keys[i][1], json_null());
        }
    }
    json_object_set_new(
        o, "tokens",
        json_integer((json_int_t)gguf_kv_array_count(f, gguf_kv_find(f, "tokenizer.ggml.tokens"))));
    json_object_set_new(
        o, "merges",
        json_integer((json_int_t)gguf_kv_array_count(f, gguf_kv_find(f, "tokenizer.ggml.merges"))));
    static const char *const id_keys[][2] = {{"tokenizer.ggml.bos_token_id", "bos"},
                                             {"tokenizer.ggml.eos_token_id", "eos"},
                                             {"tokenizer.ggml.eot_token_id", "eot"}};
    for (size_t i = 0; i < 3; i++) {
        uint32_t id;
        if (gguf_get_u32(f, id_keys[i][0], &id) == 0)
            json_object_set_new(o, id_keys[i][1], json_integer(id));
        else
            json_object_set_new(o, id_keys[i][1], json_null());
    }
    bool add_bos;
    if (gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos) == 0)
        json_object_set_new(o, "add_bos", json_boolean(add_bos));
    json_object_set_new(o, "chat_template",
                        json_boolean(gguf_kv_find(f, "tokenizer.chat_template") >= 0));
    return o;
}

/* A float as JSON, printed at float precision (1e-05, not 9.99999974e-06). */
static json_t *json_float(float v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%.9g", (double)v);
    double shortest = strtod(buf, NULL);
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) {
            shortest = strtod(buf, NULL);
            break;
        }
    }
    return json_real(shortest);
}

static json_t *hparams_json(const model_meta *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "n_vocab", json_integer(m->n_vocab));
    json_object_set_new(o, "n_ctx_train", json_integer(m->n_ctx_train));
    json_object_set_new(o, "n_embd", json_integer(m->n_embd));
    json_object_set_new(o, "n_layer", json_integer(m->n_layer));
    json_object_set_new(o, "n_ff", json_integer(m->n_ff));
    json_object_set_new(o, "n_head", json_integer(m->n_head));
    json_object_set_new(o, "n_head_kv", json_integer(m->n_head_kv));
    json_object_set_new(o, "head_dim", json_integer(m->head_dim));
    json_object_set_new(o, "n_rot", json_integer(m->n_rot));
    json_object_set_new(o, "rms_eps", json_float(m->rms_eps));
    json_object_set_new(o, "rope_type", json_string(model_rope_type_name(m->rope_type)));
    json_object_set_new(o, "rope_freq_base", json_float(m->rope_freq_base));
    json_object_set_new(o, "rope_freq_scale", json_float(m->rope_freq_scale));
    json_object_set_new(o, "ffn_activation", json_string(model_ffn_act_name(m->ffn_act)));
    json_object_set_new(o, "lm_head", json_string(m->tied_output ? "token_embd" : "output"));
    json_object_set_new(o, "weight_type", json_string(gguf_dtype_name(m->weight_dtype)));
    json_object_set_new(o, "scale_tensors", json_boolean(m->has_scales));
    return o;
}

/* Which bitnetd kernel would run the ternary matrices here. */
static json_t *kernel_json(const model_meta *m)
{
    json_t *o = json_object();
    bitnet_format fmt;
    if (!model_dtype_format(m->weight_dtype, &fmt)) {
        json_object_set_new(o, "format", json_null());
        json_object_set_new(o, "kernel", json_null());
        json_object_set_new(o, "note", json_string("float weights: no ternary kernel needed"));
        return o;
    }
    json_object_set_new(o, "format", json_string(bitnet_format_name(fmt)));
    const bitnet_kernel *k = bitnet_kernel_select(fmt, NULL);
    json_object_set_new(o, "kernel", k ? json_string(k->name) : json_null());
    json_t *avail = json_array();
    for (int id = 0; id < BITNET_KERNEL_COUNT; id++) {
        const bitnet_kernel *c = bitnet_kernel_get((bitnet_kernel_id)id);
        if (c && c->format == fmt && c->provider == BITNET_PROVIDER_BITNETD &&
            c->device == BITNET_DEVICE_CPU && bitnet_kernel_is_capable_of(c))
            json_array_append_new(avail, json_string(c->name));
    }
    json_object_set_new(o, "available", avail);
    if (!k)
        json_object_set_new(o, "note",
                            json_string("no bitnetd CPU kernel for this format is available here"));
    return o;
}

/* Everything known about f (m may be NULL when validation failed). */
static json_t *inspect_json(const char *path, const gguf_file *f, const model_meta *m,
                            const char *error)
{
    char buf[512];
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(path));
    json_object_set_new(o, "size", json_integer((json_int_t)gguf_file_size(f)));
    json_object_set_new(o, "gguf_version", json_integer(gguf_version(f)));
    json_object_set_new(o, "alignment", json_integer(gguf_alignment(f)));
    json_object_set_new(o, "data_offset", json_integer((json_int_t)gguf_data_offset(f)));
    escape_cstr(gguf_architecture(f), buf, sizeof(buf));
    json_object_set_new(o, "architecture", json_string(buf));
    const char *s;
    size_t len;
    if (gguf_get_str(f, "general.name", &s, &len) == 0) {
        escape_bytes(s, len, buf, sizeof(buf));
        json_object_set_new(o, "name", json_string(buf));
    }
    json_object_set_new(o, "kv_count", json_integer(gguf_kv_count(f)));
    json_object_set_new(o, "hparams", m ? hparams_json(m) : json_null());
    json_object_set_new(o, "tokenizer", tokenizer_json(f));

    json_t *tensors = json_array();
    json_t *formats = json_object();
    uint64_t total = 0;
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        const char *type = gguf_tensor_type_name(f, t);
        json_t *e = json_object();
        escape_cstr(t->name, buf, sizeof(buf));
        json_object_set_new(e, "name", json_string(buf));
        json_object_set_new(e, "type", json_string(type));
        json_t *shape = json_array();
        for (uint32_t d = 0; d < t->n_dims; d++)
            json_array_append_new(shape, json_integer(t->ne[d]));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "bytes", json_integer((json_int_t)t->nbytes));
        json_object_set_new(e, "offset", json_integer((json_int_t)t->offset));
        json_array_append_new(tensors, e);
        json_t *cnt = json_object_get(formats, type);
        json_object_set_new(formats, type, json_integer(cnt ? json_integer_value(cnt) + 1 : 1));
        total += t->nbytes;
    }
    json_object_set_new(o, "tensor_count", json_integer(gguf_tensor_count(f)));
    json_object_set_new(o, "tensor_bytes", json_integer((json_int_t)total));
    json_object_set_new(o, "formats", formats);
    json_object_set_new(o, "tensors", tensors);
    json_object_set_new(o, "kernels", m ? kernel_json(m) : json_null());
    json_object_set_new(o, "valid", json_boolean(error == NULL));
    json_object_set_new(o, "error", error ? json_string(error) : json_null());
    return o;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static void print_opt_int(const char *label, json_t *v)
{
    if (json_is_integer(v))
        printf(", %s %lld", label, (long long)json_integer_value(v));
}

static void print_human(json_t *o, const gguf_file *f)
{
    char size[32], tbytes[32];
    human_bytes((uint64_t)json_integer_value(json_object_get(o, "size")), size, sizeof(size));
    human_bytes((uint64_t)json_integer_value(json_object_get(o, "tensor_bytes")), tbytes,
                sizeof(tbytes));
    printf("file:          %s (%s, GGUF v%lld, alignment %lld, %lld keys, data at byte %lld)\n",
           jstr(o, "file"), size, (long long)json_integer_value(json_object_get(o, "gguf_version")),
           (long long)json_integer_value(json_object_get(o, "alignment")),
           (long long)json_integer_value(json_object_get(o, "kv_count")),
           (long long)json_integer_value(json_object_get(o, "data_offset")));
    printf("architecture:  %s", jstr(o, "architecture"));
    if (json_object_get(o, "name"))
        printf(" (\"%s\")", jstr(o, "name"));
    printf("\n");

    json_t *h = json_object_get(o, "hparams");
    if (json_is_object(h)) {
        printf("hparams:       n_vocab %lld, n_ctx_train %lld, n_embd %lld, n_layer %lld, n_ff "
               "%lld\n",
               (long long)json_integer_value(json_object_get(h, "n_vocab")),
               (long long)json_integer_value(json_object_get(h, "n_ctx_train")),
               (long long)json_integer_value(json_object_get(h, "n_embd")),
               (long long)json_integer_value(json_object_get(h, "n_layer")),
               (long long)json_integer_value(json_object_get(h, "n_ff")));
        printf("               n_head %lld, n_head_kv %lld, head_dim %lld, n_rot %lld, rms_eps "
               "%g\n",
               (long long)json_integer_value(json_object_get(h, "n_head")),
               (long long)json_integer_value(json_object_get(h, "n_head_kv")),
               (long long)json_integer_value(json_object_get(h, "head_dim")),
               (long long)json_integer_value(json_object_get(h, "n_rot")),
               json_real_value(json_object_get(h, "rms_eps")));
        printf("               rope %s (base %g, scale %g), ffn %s, lm head %s, weights %s%s\n",
               jstr(h, "rope_type"), json_real_value(json_object_get(h, "rope_freq_base")),
               json_real_value(json_object_get(h, "rope_freq_scale")), jstr(h, "ffn_activation"),
               jstr(h, "lm_head"), jstr(h, "weight_type"),
               json_is_true(json_object_get(h, "scale_tensors")) ? " with .scale tensors" : "");
    }

    json_t *tok = json_object_get(o, "tokenizer");
    printf("tokenizer:     %s, pre %s, %lld tokens, %lld merges", jstr(tok, "model"),
           jstr(tok, "pre"), (long long)json_integer_value(json_object_get(tok, "tokens")),
           (long long)json_integer_value(json_object_get(tok, "merges")));
    print_opt_int("bos", json_object_get(tok, "bos"));
    print_opt_int("eos", json_object_get(tok, "eos"));
    print_opt_int("eot", json_object_get(tok, "eot"));
    printf("\n");

    printf("tensors:       %lld",
           (long long)json_integer_value(json_object_get(o, "tensor_count")));
    if (gguf_tensor_count(f) > 0)
        printf(", %s:", tbytes);
    const char *type;
    json_t *cnt;
    json_object_foreach(json_object_get(o, "formats"), type, cnt)
    {
        printf(" %lld %s", (long long)json_integer_value(cnt), type);
    }
    printf("\n");
    int64_t n = gguf_tensor_count(f);
    for (int64_t i = 0; i < n && i < INSPECT_HUMAN_TENSORS; i++) {
        json_t *e = json_array_get(json_object_get(o, "tensors"), (size_t)i);
        char shape[96];
        shape_text(gguf_tensor_at(f, i), shape, sizeof(shape));
        printf("  %-32s %-6s %-18s %12lld\n", jstr(e, "name"), jstr(e, "type"), shape,
               (long long)json_integer_value(json_object_get(e, "bytes")));
    }
    if (n > INSPECT_HUMAN_TENSORS)
        printf("  ... %lld more (--json lists all)\n", (long long)(n - INSPECT_HUMAN_TENSORS));

    json_t *k = json_object_get(o, "kernels");
    if (json_is_object(k)) {
        if (json_is_null(json_object_get(k, "format"))) {
            printf("kernels:       %s\n", jstr(k, "note"));
        } else {
            printf("kernels:       %s weights -> %s (available here:", jstr(k, "format"),
                   json_is_string(json_object_get(k, "kernel")) ? jstr(k, "kernel") : "none");
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(k, "available"), i, v)
            {
                printf(" %s", json_string_value(v));
            }
            printf(")\n");
        }
    }
    if (json_is_true(json_object_get(o, "valid")))
        printf("valid:         yes\n");
    else
        printf("valid:         no: %s\n", jstr(o, "error"));
}

int cmd_inspect(const struct ctl_options *opts, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "Usage: bitnetctl inspect FILE [--json]\n");
        return CTL_EXIT_USAGE;
    }
    const char *path = argv[0];
    char err[1024];
    gguf_file *f = NULL;
    int rc = gguf_open(path, &f, err, sizeof(err));
    if (rc < 0) {
        if (opts->json) {
            json_t *o = json_object();
            json_object_set_new(o, "file", json_string(path));
            json_object_set_new(o, "valid", json_false());
            char esc[1100];
            escape_cstr(err, esc, sizeof(esc));
            json_object_set_new(o, "error", json_string(esc));
            ctl_print_json(o);
            json_decref(o);
        }
        fprintf(stderr, "bitnetctl inspect: %s\n", err);
        return CTL_EXIT_FAILURE;
    }
    model_meta *m = NULL;
    rc = model_meta_load(f, &m, err, sizeof(err));
    char esc[1100];
    if (rc < 0)
        escape_cstr(err, esc, sizeof(esc));
    json_t *o = inspect_json(path, f, m, rc < 0 ? esc : NULL);
    if (opts->json)
        ctl_print_json(o);
    else
        print_human(o, f);
    if (rc < 0)
        fprintf(stderr, "bitnetctl inspect: %s\n", esc);
    json_decref(o);
    model_meta_free(m);
    gguf_close(f);
    return rc < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}
