/* SPDX-License-Identifier: Apache-2.0 */
#include "erecruit.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#define API_PREFIX "/api/v2/"
#define TOKEN_PATH "/t/token"
#define MONTH_S (30L * 86400L)
/* Cursors are short; anything longer is garbage, refused before decoding. */
#define MAX_CURSOR 8192

enum { K_POS, K_SUB, K_CON, K_N };
enum { EX_CF = 1, EX_HT = 2 };

/* Field slots of er_rec.str, by kind. */
enum { P_TITLE, P_DEPT, P_CITY, P_STATE, P_COUNTRY, P_EMPTYPE, P_DESC, P_NSTR };
enum { C_FIRST, C_LAST, C_EMAIL, C_PHONE };

static const char *const kind_single[K_N] = {"position", "submission", "contact"};
static const char *const kind_plural[K_N] = {"positions", "submissions", "contacts"};
static const long id_base[K_N] = {1001, 5000001, 2000001};

static const char *const statuses[] = {"draft", "open", "closed", "filled"};
#define NSTATUS 4
static const unsigned status_weight[NSTATUS] = {10, 50, 25, 15};

typedef struct er_stage { int id; const char *name; int order; } er_stage;
static const er_stage stages[] = {
    {1, "Applied", 1}, {2, "Screening", 2}, {3, "Interview", 3}, {4, "Offer", 4}, {5, "Hired", 5},
};
#define NSTAGES (sizeof(stages) / sizeof(stages[0]))

typedef struct er_reason { int id; const char *name; } er_reason;
static const er_reason reasons[] = {
    {10, "Not qualified"}, {11, "Withdrew"}, {12, "Position filled"}, {13, "No show"},
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

static const char *const titles[] = {
    "Registered Nurse", "Software Engineer", "Accountant", "Sales Associate",
    "Warehouse Operator", "HR Coordinator", "Data Analyst", "Pharmacist",
    "Customer Service Agent", "Electrician", "Project Manager", "Teacher",
};
static const char *const departments[] = {
    "Care", "Engineering", "Finance", "Sales", "Operations", "People", "Data", "Pharmacy",
    "Support", "Facilities",
};
typedef struct er_loc { const char *city, *state, *country; } er_loc;
static const er_loc locations[] = {
    {"Riyadh", "Riyadh", "Saudi Arabia"},
    {"Jeddah", "Makkah", "Saudi Arabia"},
    {"Dammam", "Eastern Province", "Saudi Arabia"},
    {"Dubai", "Dubai", "United Arab Emirates"},
    {"Doha", "Doha", "Qatar"},
    {"Cairo", "Cairo", "Egypt"},
    {"Amman", "Amman", "Jordan"},
};
static const char *const emp_types[] = {"full_time", "part_time", "contract", "temporary",
                                        "internship"};
/* Non-ASCII and quote characters on purpose: clients must handle both. */
static const char *const first_names[] = {
    "Amal", "Omar", "Layla", "Yousef", "Sara", "Khalid", "Noura", "Fahad", "Huda",
    "Tariq", "Maha", "Ali", "Reem", "Hassan", "Dana", "Zaid", "Zo\xc3\xab", "Jos\xc3\xa9",
};
static const char *const last_names[] = {
    "Saleh", "Haddad", "Nasser", "Khalil", "Mansour", "Farouk", "Aziz", "Rahman",
    "Qasim", "Hamdan", "O'Brien", "Said",
};
static const long tag_pool[] = {2001, 2002, 2003, 2004, 2005};
static const char *const team_roles[] = {"hiring_manager", "recruiter", "coordinator"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* --- custom fields ------------------------------------------------------ */

typedef enum { CF_TEXT, CF_NUMBER, CF_DATE, CF_SELECT } cf_type;
static const char *const cf_type_names[] = {"text", "number", "date", "select"};

typedef struct cf_def {
    const char *key, *label;
    cf_type type;
    const char *const *values; /* select: the options; text: sample values */
} cf_def;

static const char *const cf_cost_centers[] = {"CC-100", "CC-200", "CC-310", "CC-420", NULL};
static const char *const cf_remote[] = {"onsite", "hybrid", "remote", NULL};
static const char *const cf_source[] = {"referral", "job_board", "agency", "career_site", NULL};
static const char *const cf_notes[] = {"Strong communicator", "Needs visa", "Night shifts ok",
                                       NULL};
static const char *const cf_nationality[] = {"Saudi", "Egyptian", "Jordanian", "Indian",
                                             "Filipino", NULL};
static const char *const cf_visa[] = {"citizen", "resident", "needs_sponsorship", NULL};

static const cf_def cf_position[] = {
    {"cost_center", "Cost center", CF_TEXT, cf_cost_centers},
    {"headcount", "Headcount", CF_NUMBER, NULL},
    {"target_start", "Target start date", CF_DATE, NULL},
    {"remote_policy", "Remote policy", CF_SELECT, cf_remote},
};
static const cf_def cf_submission[] = {
    {"source", "Source", CF_SELECT, cf_source},
    {"screening_score", "Screening score", CF_NUMBER, NULL},
    {"interview_date", "Interview date", CF_DATE, NULL},
    {"recruiter_notes", "Recruiter notes", CF_TEXT, cf_notes},
};
static const cf_def cf_contact[] = {
    {"nationality", "Nationality", CF_TEXT, cf_nationality},
    {"years_experience", "Years of experience", CF_NUMBER, NULL},
    {"available_from", "Available from", CF_DATE, NULL},
    {"visa_status", "Visa status", CF_SELECT, cf_visa},
};
static const cf_def *const cf_defs[K_N] = {cf_position, cf_submission, cf_contact};
static const size_t cf_count[K_N] = {NELEM(cf_position), NELEM(cf_submission),
                                     NELEM(cf_contact)};

/* --- state --------------------------------------------------------------- */

typedef struct er_note {
    long id;
    char *body_html;
    long action_id; /* 0: null */
    int64_t created;
    char *ref; /* external_ref the client sent, or NULL */
} er_note;

typedef struct er_doc {
    long id;
    char *filename, *content_type, *kind;
    char *data_b64; /* NULL for a generated resume: rendered from the owner's id */
    size_t size;
    int64_t created;
    char *ref; /* external_ref the client sent, or NULL */
} er_doc;

typedef struct er_rec {
    long id;
    int64_t upd, created; /* local seconds: UTC + offset, read back with gmtime */
    char *str[P_NSTR];
    int status;           /* positions: index in statuses */
    long position_id, contact_id, status_id, reason_id; /* submissions; 0: null */
    int stage_id;
    unsigned long acted;  /* submissions: ordinal of the last stage move or rejection */
    bool rejected;
    long *tags;
    size_t ntags;
    cJSON *custom; /* NULL: the generated values */
    er_note *notes;
    size_t nnotes;
    er_doc *docs;
    size_t ndocs;
    char *ref; /* submissions: external_ref the client created it with, or NULL */
} er_rec;

typedef struct er_kind {
    er_rec **byid;  /* sorted by id */
    er_rec **order; /* sorted by (upd, id) */
    size_t n, cap;
    long next_id;
} er_kind;

typedef struct er_token {
    char tok[33];
    int64_t expires; /* UTC */
} er_token;

typedef struct er_count {
    char *method, *path;
    unsigned long n;
} er_count;

struct ah_erecruit_sim {
    uint64_t seed;
    int tz_s;
    int token_ttl_s;
    int max_per_page;
    size_t cursor_pad;
    long odd_updated_at_id;
    size_t page_excess;
    double rps;
    char *client_id, *client_secret;
    int64_t anchor_local;

    pthread_mutex_t mu; /* guards everything below */
    er_kind k[K_N];
    unsigned long nacted; /* stage moves and rejections of submissions so far */
    time_t fixed_utc;
    long next_note_id, next_doc_id;
    er_token *tokens;
    size_t ntokens, cap_tokens;
    er_count *counts;
    size_t ncounts, cap_counts;
    ah_erecruit_stats stats;
    double bucket;
    struct timespec bucket_t;
};

/* --- small helpers ------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* One independent stream per record (and purpose), so values generated on
 * demand (custom fields, hiring team) need no stored state. */
static uint64_t rec_rng(uint64_t seed, int kind, long id, uint64_t purpose)
{
    uint64_t s = seed ^ ((uint64_t)(kind + 1) * 0xD6E8FEB86659FD93ull) ^
                 ((uint64_t)id * 0xA0761D6478BD642Full) ^ (purpose * 0xE7037ED1A0B428DBull);
    splitmix64(&s);
    return s;
}

static unsigned pick(uint64_t *rng, unsigned n)
{
    return (unsigned)(splitmix64(rng) % n);
}

static int kind_from_str(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < K_N; i++)
        if (strcmp(s, kind_single[i]) == 0 || strcmp(s, kind_plural[i]) == 0)
            return i;
    return -1;
}

static void fmt_stamp(int64_t local, char buf[20])
{
    time_t t = (time_t)local;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, 20, "1970-01-01T00:00:00");
        return;
    }
    strftime(buf, 20, "%Y-%m-%dT%H:%M:%S", &tm);
}

/* Exactly "YYYY-MM-DDTHH:MM:SS", a real calendar time. */
static int parse_stamp(const char *s, int64_t *out)
{
    if (!s || strlen(s) != 19)
        return -1;
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; i < 19; i++) {
        if (pattern[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pattern[i])
            return -1;
    }
    struct tm tm = {0};
    tm.tm_year = atoi(s) - 1900;
    tm.tm_mon = atoi(s + 5) - 1;
    tm.tm_mday = atoi(s + 8);
    tm.tm_hour = atoi(s + 11);
    tm.tm_min = atoi(s + 14);
    tm.tm_sec = atoi(s + 17);
    struct tm want = tm;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mon != want.tm_mon || tm.tm_mday != want.tm_mday ||
        tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min || tm.tm_sec != want.tm_sec)
        return -1;
    *out = (int64_t)t;
    return 0;
}

/* "YYYY-MM-DD", a real date. */
static bool valid_date(const char *s)
{
    char buf[20];
    int64_t t;
    if (!s || strlen(s) != 10)
        return false;
    snprintf(buf, sizeof(buf), "%sT00:00:00", s);
    return parse_stamp(buf, &t) == 0;
}

static bool parse_id(const char *s, long *out)
{
    if (!s || !*s || strlen(s) > 18)
        return false;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    long v = strtol(s, NULL, 10);
    if (v <= 0)
        return false;
    *out = v;
    return true;
}

static bool json_int(const cJSON *v, long *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (d < 1 || d > 9.0e15 || d != (double)(long)d)
        return false;
    *out = (long)d;
    return true;
}

static int64_t now_utc_locked(const ah_erecruit_sim *e)
{
    return e->fixed_utc ? (int64_t)e->fixed_utc : (int64_t)time(NULL);
}

static int64_t now_local_locked(const ah_erecruit_sim *e)
{
    return now_utc_locked(e) + e->tz_s;
}

/* --- base64 (OpenSSL) ------------------------------------------------------ */

static char *b64_encode(const unsigned char *data, size_t n)
{
    if (n > (size_t)INT_MAX / 2)
        return NULL;
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)n);
    return out;
}

/* Decodes standard, padded base64 (whitespace ignored). Returns the decoded
 * bytes (malloc'd, *len set) or NULL when it is not valid base64. */
static unsigned char *b64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s);
    if (n > (size_t)INT_MAX / 2)
        return NULL;
    char *clean = malloc(n + 1);
    if (!clean)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            clean[m++] = s[i];
    clean[m] = '\0';
    unsigned char *out = malloc(m / 4 * 3 + 1);
    if (!out || m % 4 != 0) {
        free(clean);
        free(out);
        return NULL;
    }
    size_t pad = 0;
    if (m >= 1 && clean[m - 1] == '=')
        pad++;
    if (m >= 2 && clean[m - 2] == '=')
        pad++;
    /* '=' only as trailing padding: EVP_DecodeBlock is lenient elsewhere. */
    for (size_t i = 0; i + pad < m; i++) {
        if (clean[i] == '=') {
            free(clean);
            free(out);
            return NULL;
        }
    }
    int r = m ? EVP_DecodeBlock(out, (unsigned char *)clean, (int)m) : 0;
    free(clean);
    if (r < 0 || (size_t)r < pad) {
        free(out);
        return NULL;
    }
    *len = (size_t)r - pad;
    return out;
}

/* --- records and their orders ---------------------------------------------- */

static int key_cmp(int64_t u1, long i1, int64_t u2, long i2)
{
    if (u1 != u2)
        return u1 < u2 ? -1 : 1;
    if (i1 != i2)
        return i1 < i2 ? -1 : 1;
    return 0;
}

static int order_qsort_cmp(const void *a, const void *b)
{
    const er_rec *x = *(er_rec *const *)a, *y = *(er_rec *const *)b;
    return key_cmp(x->upd, x->id, y->upd, y->id);
}

/* First index in order whose key is > (u, i). */
static size_t order_upper(const er_kind *k, int64_t u, long i)
{
    size_t lo = 0, hi = k->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(k->order[mid]->upd, k->order[mid]->id, u, i) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First index in order whose key is >= (u, i). */
static size_t order_lower(const er_kind *k, int64_t u, long i)
{
    size_t lo = 0, hi = k->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(k->order[mid]->upd, k->order[mid]->id, u, i) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First index in byid whose id is >= id. */
static size_t byid_lower(const er_kind *k, long id)
{
    size_t lo = 0, hi = k->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (k->byid[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static er_rec *find_rec(const er_kind *k, long id)
{
    size_t i = byid_lower(k, id);
    return i < k->n && k->byid[i]->id == id ? k->byid[i] : NULL;
}

static int kind_reserve(er_kind *k, size_t want)
{
    if (want <= k->cap)
        return 0;
    size_t ncap = k->cap ? k->cap : 64;
    while (ncap < want)
        ncap *= 2;
    er_rec **b = realloc(k->byid, ncap * sizeof(*b));
    if (!b)
        return -1;
    k->byid = b;
    er_rec **o = realloc(k->order, ncap * sizeof(*o));
    if (!o)
        return -1;
    k->order = o;
    k->cap = ncap;
    return 0;
}

static int kind_insert(er_kind *k, er_rec *r)
{
    if (kind_reserve(k, k->n + 1) != 0)
        return -1;
    size_t bi = byid_lower(k, r->id);
    memmove(&k->byid[bi + 1], &k->byid[bi], (k->n - bi) * sizeof(*k->byid));
    k->byid[bi] = r;
    size_t oi = order_lower(k, r->upd, r->id);
    memmove(&k->order[oi + 1], &k->order[oi], (k->n - oi) * sizeof(*k->order));
    k->order[oi] = r;
    k->n++;
    if (r->id >= k->next_id)
        k->next_id = r->id + 1;
    return 0;
}

static void kind_remove(er_kind *k, er_rec *r)
{
    size_t bi = byid_lower(k, r->id);
    size_t oi = order_lower(k, r->upd, r->id);
    memmove(&k->byid[bi], &k->byid[bi + 1], (k->n - bi - 1) * sizeof(*k->byid));
    memmove(&k->order[oi], &k->order[oi + 1], (k->n - oi - 1) * sizeof(*k->order));
    k->n--;
}

/* Keeps the keyset order exact after a change of updated_at. */
static void set_upd(er_kind *k, er_rec *r, int64_t upd)
{
    if (upd == r->upd)
        return;
    size_t oi = order_lower(k, r->upd, r->id);
    memmove(&k->order[oi], &k->order[oi + 1], (k->n - oi - 1) * sizeof(*k->order));
    k->n--;
    r->upd = upd;
    size_t ni = order_lower(k, r->upd, r->id);
    memmove(&k->order[ni + 1], &k->order[ni], (k->n - ni) * sizeof(*k->order));
    k->order[ni] = r;
    k->n++;
}

static void rec_free(er_rec *r)
{
    if (!r)
        return;
    for (int i = 0; i < P_NSTR; i++)
        free(r->str[i]);
    free(r->tags);
    cJSON_Delete(r->custom);
    for (size_t i = 0; i < r->nnotes; i++) {
        free(r->notes[i].body_html);
        free(r->notes[i].ref);
    }
    free(r->notes);
    free(r->ref);
    for (size_t i = 0; i < r->ndocs; i++) {
        free(r->docs[i].ref);
        free(r->docs[i].filename);
        free(r->docs[i].content_type);
        free(r->docs[i].kind);
        free(r->docs[i].data_b64);
    }
    free(r->docs);
    free(r);
}

static int set_str(er_rec *r, int slot, const char *v)
{
    char *d = v ? strdup(v) : NULL;
    if (v && !d)
        return -1;
    free(r->str[slot]);
    r->str[slot] = d;
    return 0;
}

static int add_tag(er_rec *r, long tag)
{
    for (size_t i = 0; i < r->ntags; i++)
        if (r->tags[i] == tag)
            return 0;
    long *t = realloc(r->tags, (r->ntags + 1) * sizeof(*t));
    if (!t)
        return -1;
    t[r->ntags++] = tag;
    r->tags = t;
    return 1;
}

/* The PDF a generated resume contains; deterministic per contact. */
static int gen_resume_pdf(long contact_id, char *buf, size_t size)
{
    return snprintf(buf, size,
                    "%%PDF-1.4\n%% resume of ERecruit contact %ld\n1 0 obj << /Type /Catalog >> "
                    "endobj\ntrailer << /Root 1 0 R >>\n%%%%EOF\n",
                    contact_id);
}

static int add_doc(er_rec *r, er_doc *d)
{
    er_doc *nd = realloc(r->docs, (r->ndocs + 1) * sizeof(*nd));
    if (!nd)
        return -1;
    r->docs = nd;
    r->docs[r->ndocs++] = *d;
    return 0;
}

/* --- generation ---------------------------------------------------------- */

static er_rec *gen_position(const ah_erecruit_sim *e, long id)
{
    uint64_t g = rec_rng(e->seed, K_POS, id, 0);
    er_rec *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->id = id;
    r->upd = e->anchor_local - 60 - (int64_t)(splitmix64(&g) % (uint64_t)MONTH_S);
    r->created = r->upd - (int64_t)(splitmix64(&g) % (uint64_t)(2 * MONTH_S));
    unsigned w = pick(&g, 100), acc = 0;
    for (int i = 0; i < NSTATUS; i++) {
        acc += status_weight[i];
        if (w < acc) {
            r->status = i;
            break;
        }
    }
    const er_loc *loc = &locations[pick(&g, NELEM(locations))];
    if (set_str(r, P_TITLE, titles[pick(&g, NELEM(titles))]) ||
        set_str(r, P_DEPT, departments[pick(&g, NELEM(departments))]) ||
        set_str(r, P_CITY, loc->city) || set_str(r, P_STATE, loc->state) ||
        set_str(r, P_COUNTRY, loc->country) ||
        set_str(r, P_EMPTYPE, emp_types[pick(&g, NELEM(emp_types))])) {
        rec_free(r);
        return NULL;
    }
    return r;
}

static void ascii_lower(const char *in, char *out, size_t size)
{
    size_t n = 0;
    for (; *in && n + 1 < size; in++)
        if (isalpha((unsigned char)*in) && (unsigned char)*in < 128)
            out[n++] = (char)tolower((unsigned char)*in);
    out[n] = '\0';
}

static er_rec *gen_contact(ah_erecruit_sim *e, long id)
{
    uint64_t g = rec_rng(e->seed, K_CON, id, 0);
    er_rec *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->id = id;
    r->upd = e->anchor_local - 60 - (int64_t)(splitmix64(&g) % (uint64_t)MONTH_S);
    r->created = r->upd - (int64_t)(splitmix64(&g) % (uint64_t)(2 * MONTH_S));
    const char *first = first_names[pick(&g, NELEM(first_names))];
    const char *last = last_names[pick(&g, NELEM(last_names))];
    char a[32], b[32], email[96], phone[24];
    ascii_lower(first, a, sizeof(a));
    ascii_lower(last, b, sizeof(b));
    snprintf(email, sizeof(email), "%s.%s.%ld@example.com", a, b, id);
    /* 7919 is prime to 10^8, so phones are unique per id. */
    snprintf(phone, sizeof(phone), "+9665%08ld", (long)(((uint64_t)id * 7919u) % 100000000u));
    if (set_str(r, C_FIRST, first) || set_str(r, C_LAST, last) || set_str(r, C_EMAIL, email) ||
        set_str(r, C_PHONE, phone))
        goto fail;
    unsigned ntags = pick(&g, 3);
    for (unsigned i = 0; i < ntags; i++)
        if (add_tag(r, tag_pool[pick(&g, NELEM(tag_pool))]) < 0)
            goto fail;
    if (pick(&g, 10) < 3) {
        char pdf[256], fname[96];
        int len = gen_resume_pdf(id, pdf, sizeof(pdf));
        snprintf(fname, sizeof(fname), "%s_%s_CV.pdf", a, b);
        er_doc d = {.id = e->next_doc_id++, .size = (size_t)len, .created = r->created};
        d.filename = strdup(fname);
        d.content_type = strdup("application/pdf");
        d.kind = strdup("resume");
        if (!d.filename || !d.content_type || !d.kind || add_doc(r, &d) != 0) {
            free(d.filename);
            free(d.content_type);
            free(d.kind);
            goto fail;
        }
    }
    return r;
fail:
    rec_free(r);
    return NULL;
}

static er_rec *gen_submission(const ah_erecruit_sim *e, long id, size_t np, size_t nc)
{
    uint64_t g = rec_rng(e->seed, K_SUB, id, 0);
    er_rec *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->id = id;
    r->upd = e->anchor_local - 60 - (int64_t)(splitmix64(&g) % (uint64_t)MONTH_S);
    r->created = r->upd - (int64_t)(splitmix64(&g) % (uint64_t)(2 * MONTH_S));
    r->position_id = id_base[K_POS] + (long)(splitmix64(&g) % np);
    r->contact_id = id_base[K_CON] + (long)(splitmix64(&g) % nc);
    static const unsigned stage_w[] = {35, 25, 20, 12, 8};
    unsigned w = pick(&g, 100), acc = 0;
    r->stage_id = 1;
    for (size_t i = 0; i < NSTAGES; i++) {
        acc += stage_w[i];
        if (w < acc) {
            r->stage_id = stages[i].id;
            break;
        }
    }
    if (pick(&g, 100) < 15) {
        r->rejected = true;
        r->reason_id = reasons[pick(&g, NREASONS)].id;
    }
    return r;
}

static int generate(ah_erecruit_sim *e, size_t np, size_t nc, size_t ns)
{
    size_t want[K_N] = {np, ns, nc};
    for (int k = 0; k < K_N; k++) {
        if (kind_reserve(&e->k[k], want[k] ? want[k] : 1) != 0)
            return -1;
        e->k[k].next_id = id_base[k];
    }
    if (np == 0 || nc == 0)
        want[K_SUB] = 0; /* a submission links a position and a contact */
    for (int k = 0; k < K_N; k++) {
        er_kind *kk = &e->k[k];
        for (size_t i = 0; i < want[k]; i++) {
            long id = id_base[k] + (long)i;
            er_rec *r = k == K_POS   ? gen_position(e, id)
                        : k == K_CON ? gen_contact(e, id)
                                     : gen_submission(e, id, np, nc);
            if (!r)
                return -1;
            kk->byid[kk->n] = r;
            kk->order[kk->n] = r;
            kk->n++;
        }
        kk->next_id = id_base[k] + (long)want[k];
        qsort(kk->order, kk->n, sizeof(*kk->order), order_qsort_cmp);
    }
    return 0;
}

/* --- rendering (under the lock; cJSON copies every string) ------------------ */

static bool add_str(cJSON *o, const char *key, const char *v)
{
    return v ? cJSON_AddStringToObject(o, key, v) != NULL : cJSON_AddNullToObject(o, key) != NULL;
}

static bool add_num(cJSON *o, const char *key, long v)
{
    return cJSON_AddNumberToObject(o, key, (double)v) != NULL;
}

static bool add_num_or_null(cJSON *o, const char *key, long v)
{
    return v ? add_num(o, key, v) : cJSON_AddNullToObject(o, key) != NULL;
}

static bool add_stamp(cJSON *o, const char *key, int64_t v)
{
    char b[20];
    fmt_stamp(v, b);
    return cJSON_AddStringToObject(o, key, b) != NULL;
}

/* Adds item to object o under key, or to array o when key is NULL; item is
 * consumed either way. */
static bool add_item(cJSON *o, const char *key, cJSON *item)
{
    if (!item)
        return false;
    if (!(key ? cJSON_AddItemToObject(o, key, item) : cJSON_AddItemToArray(o, item))) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

static cJSON *gen_custom(const ah_erecruit_sim *e, int kind, long id)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    bool ok = true;
    for (size_t i = 0; i < cf_count[kind]; i++) {
        const cf_def *d = &cf_defs[kind][i];
        uint64_t g = rec_rng(e->seed, kind, id, 100 + i);
        if (pick(&g, 5) == 0) {
            ok = ok && cJSON_AddNullToObject(o, d->key);
            continue;
        }
        size_t nv = 0;
        while (d->values && d->values[nv])
            nv++;
        char date[20];
        switch (d->type) {
        case CF_TEXT:
        case CF_SELECT:
            ok = ok && cJSON_AddStringToObject(o, d->key, d->values[pick(&g, (unsigned)nv)]);
            break;
        case CF_NUMBER:
            ok = ok && cJSON_AddNumberToObject(o, d->key, (double)pick(&g, 100));
            break;
        case CF_DATE:
            fmt_stamp(e->anchor_local - (int64_t)pick(&g, 365) * 86400, date);
            date[10] = '\0';
            ok = ok && cJSON_AddStringToObject(o, d->key, date);
            break;
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *custom_values(const ah_erecruit_sim *e, int kind, const er_rec *r)
{
    return r->custom ? cJSON_Duplicate(r->custom, 1) : gen_custom(e, kind, r->id);
}

static cJSON *gen_team(const ah_erecruit_sim *e, long id)
{
    cJSON *a = cJSON_CreateArray();
    if (!a)
        return NULL;
    uint64_t g = rec_rng(e->seed, K_POS, id, 200);
    unsigned n = 1 + pick(&g, 3);
    for (unsigned i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof(name), "%s %s", first_names[pick(&g, NELEM(first_names))],
                 last_names[pick(&g, NELEM(last_names))]);
        cJSON *m = cJSON_CreateObject();
        if (!add_item(a, NULL, m) || !add_str(m, "name", name) ||
            !add_str(m, "role", team_roles[i])) {
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}


static cJSON *render(const ah_erecruit_sim *e, int kind, const er_rec *r, unsigned expand)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    bool ok = add_num(o, "id", r->id);
    if (kind == K_POS) {
        char desc[256];
        if (!r->str[P_DESC])
            snprintf(desc, sizeof(desc), "<p>%s, %s department, %s. Ref %ld.</p>",
                     r->str[P_TITLE] ? r->str[P_TITLE] : "Position",
                     r->str[P_DEPT] ? r->str[P_DEPT] : "General",
                     r->str[P_CITY] ? r->str[P_CITY] : "remote", r->id);
        cJSON *loc = ok ? cJSON_CreateObject() : NULL;
        ok = add_item(o, "location", loc) && add_str(loc, "city", r->str[P_CITY]) &&
             add_str(loc, "state", r->str[P_STATE]) &&
             add_str(loc, "country", r->str[P_COUNTRY]) &&
             add_str(o, "title", r->str[P_TITLE]) &&
             add_str(o, "status", statuses[r->status]) &&
             add_str(o, "department", r->str[P_DEPT]) &&
             add_str(o, "employment_type", r->str[P_EMPTYPE]) &&
             add_str(o, "description", r->str[P_DESC] ? r->str[P_DESC] : desc);
    } else if (kind == K_SUB) {
        ok = ok && add_num(o, "position_id", r->position_id) &&
             add_num(o, "contact_id", r->contact_id) && add_num(o, "stage_id", r->stage_id) &&
             add_num_or_null(o, "status_id", r->status_id) &&
             cJSON_AddBoolToObject(o, "rejected", r->rejected) &&
             add_num_or_null(o, "disposition_reason_id", r->reason_id) &&
             (!r->ref || add_str(o, "external_ref", r->ref));
    } else {
        cJSON *tags = ok ? cJSON_CreateArray() : NULL;
        ok = add_item(o, "tags", tags) && add_str(o, "first_name", r->str[C_FIRST]) &&
             add_str(o, "last_name", r->str[C_LAST]) && add_str(o, "email", r->str[C_EMAIL]) &&
             add_str(o, "phone", r->str[C_PHONE]);
        for (size_t i = 0; ok && i < r->ntags; i++)
            ok = add_item(tags, NULL, cJSON_CreateNumber((double)r->tags[i]));
    }
    ok = ok && add_stamp(o, "created_at", r->created) && add_stamp(o, "updated_at", r->upd);
    if (ok && (expand & EX_CF))
        ok = add_item(o, "custom_fields", custom_values(e, kind, r));
    if (ok && (expand & EX_HT))
        ok = add_item(o, "hiring_team", gen_team(e, r->id));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *render_note(const er_note *n)
{
    cJSON *o = cJSON_CreateObject();
    if (o && add_num(o, "id", n->id) && add_str(o, "body_html", n->body_html) &&
        add_num_or_null(o, "action_id", n->action_id) && add_stamp(o, "created_at", n->created) &&
        (!n->ref || add_str(o, "external_ref", n->ref)))
        return o;
    cJSON_Delete(o);
    return NULL;
}

static cJSON *render_doc(const er_doc *d)
{
    cJSON *o = cJSON_CreateObject();
    if (o && add_num(o, "id", d->id) && add_str(o, "filename", d->filename) &&
        add_str(o, "content_type", d->content_type) && add_num(o, "size", (long)d->size) &&
        add_str(o, "kind", d->kind) && add_stamp(o, "created_at", d->created) &&
        (!d->ref || add_str(o, "external_ref", d->ref)))
        return o;
    cJSON_Delete(o);
    return NULL;
}

/* An array of n items rendered by fn; NULL when out of memory. */
static cJSON *render_list(const void *items, size_t n, size_t elem,
                          cJSON *(*fn)(const void *item))
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
        cJSON *o = fn((const char *)items + i * elem);
        if (!o || !cJSON_AddItemToArray(a, o)) {
            cJSON_Delete(o);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static cJSON *render_note_item(const void *n)
{
    return render_note(n);
}

static cJSON *render_doc_item(const void *d)
{
    return render_doc(d);
}

static cJSON *render_notes(const er_rec *r)
{
    return render_list(r->notes, r->nnotes, sizeof r->notes[0], render_note_item);
}

static cJSON *render_docs(const er_rec *r)
{
    return render_list(r->docs, r->ndocs, sizeof r->docs[0], render_doc_item);
}

/* --- responses -------------------------------------------------------------- */

static void reply(ah_sim_resp *resp, int status, cJSON *body)
{
    if (!body) {
        resp->status = 500;
        free(resp->body);
        resp->body = strdup("{\"error\":\"internal\",\"message\":\"out of memory\"}");
        return;
    }
    ah_sim_json(resp, status, body);
    if (!resp->body) {
        resp->status = 500;
        resp->body = strdup("{\"error\":\"internal\",\"message\":\"out of memory\"}");
    }
}

static void reply_error(ah_sim_resp *resp, int status, const char *code, const char *field,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void reply_error(ah_sim_resp *resp, int status, const char *code, const char *field,
                        const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    if (o && (!add_str(o, "error", code) || !add_str(o, "message", msg) ||
              (field && !add_str(o, "field", field)))) {
        cJSON_Delete(o);
        o = NULL;
    }
    reply(resp, status, o);
}

/* {"data": item} */
static void reply_data(ah_sim_resp *resp, int status, cJSON *item)
{
    cJSON *o = item ? cJSON_CreateObject() : NULL;
    if (o && !add_item(o, "data", item)) {
        cJSON_Delete(o);
        o = NULL;
    } else if (!o) {
        cJSON_Delete(item);
    }
    reply(resp, status, o);
}

/* --- request bookkeeping ------------------------------------------------------ */

static void count_request(ah_erecruit_sim *e, const char *method, const char *path)
{
    char norm[256];
    size_t n = 0;
    const char *p = path;
    while (*p && n + 6 < sizeof(norm)) {
        if (*p == '/') {
            norm[n++] = *p++;
            const char *q = p;
            while (isdigit((unsigned char)*q))
                q++;
            if (q > p && (*q == '/' || *q == '\0')) {
                memcpy(norm + n, "{id}", 4);
                n += 4;
                p = q;
            }
            continue;
        }
        norm[n++] = *p++;
    }
    norm[n] = '\0';
    pthread_mutex_lock(&e->mu);
    e->stats.requests++;
    for (size_t i = 0; i < e->ncounts; i++) {
        if (strcmp(e->counts[i].path, norm) == 0 && strcmp(e->counts[i].method, method) == 0) {
            e->counts[i].n++;
            pthread_mutex_unlock(&e->mu);
            return;
        }
    }
    if (e->ncounts == e->cap_counts) {
        size_t ncap = e->cap_counts ? e->cap_counts * 2 : 16;
        er_count *c = realloc(e->counts, ncap * sizeof(*c));
        if (!c) {
            pthread_mutex_unlock(&e->mu);
            return;
        }
        e->counts = c;
        e->cap_counts = ncap;
    }
    er_count *c = &e->counts[e->ncounts];
    c->method = strdup(method);
    c->path = strdup(norm);
    if (c->method && c->path) {
        c->n = 1;
        e->ncounts++;
    } else {
        free(c->method);
        free(c->path);
    }
    pthread_mutex_unlock(&e->mu);
}

/* Token bucket on real (monotonic) time; returns 0 or the Retry-After seconds. */
static int rate_limit(ah_erecruit_sim *e)
{
    if (e->rps <= 0)
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double cap = e->rps < 1 ? 1 : e->rps;
    int wait = 0;
    pthread_mutex_lock(&e->mu);
    double dt = (double)(now.tv_sec - e->bucket_t.tv_sec) +
                (double)(now.tv_nsec - e->bucket_t.tv_nsec) / 1e9;
    e->bucket_t = now;
    e->bucket += dt * e->rps;
    if (e->bucket > cap)
        e->bucket = cap;
    if (e->bucket >= 1) {
        e->bucket -= 1;
    } else {
        double secs = (1 - e->bucket) / e->rps;
        wait = (int)secs + ((double)(int)secs < secs ? 1 : 0);
        if (wait < 1)
            wait = 1;
        e->stats.rate_limited++;
    }
    pthread_mutex_unlock(&e->mu);
    return wait;
}

static bool token_valid(ah_erecruit_sim *e, const char *auth)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    bool ok = false;
    pthread_mutex_lock(&e->mu);
    int64_t now = now_utc_locked(e);
    for (size_t i = 0; i < e->ntokens; i++) {
        if (strcmp(e->tokens[i].tok, tok) == 0) {
            ok = now < e->tokens[i].expires;
            break;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return ok;
}

/* --- /t/token ------------------------------------------------------------------- */

static char *json_value(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

static void h_token(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    ah_erecruit_sim *e = arg;
    count_request(e, req->method, req->path);
    if (strcmp(req->path, TOKEN_PATH) != 0) {
        reply_error(resp, 404, "not_found", NULL, "no such endpoint: %s", req->path);
        return;
    }
    char *grant = NULL, *id = NULL, *secret = NULL;
    const char *body = req->body;
    while (isspace((unsigned char)*body))
        body++;
    if (*body == '{') {
        cJSON *j = cJSON_Parse(body);
        grant = json_value(j, "grant_type");
        id = json_value(j, "client_id");
        secret = json_value(j, "client_secret");
        cJSON_Delete(j);
    } else {
        grant = ah_sim_form_value(body, "grant_type");
        id = ah_sim_form_value(body, "client_id");
        secret = ah_sim_form_value(body, "client_secret");
    }
    /* client_secret_basic, the other standard way of sending credentials. */
    const char *auth = ah_sim_header(req, "Authorization");
    if (!id && auth && strncasecmp(auth, "Basic ", 6) == 0) {
        size_t n;
        unsigned char *dec = b64_decode(auth + 6, &n);
        char *colon = dec ? memchr(dec, ':', n) : NULL;
        if (colon) {
            id = strndup((char *)dec, (size_t)(colon - (char *)dec));
            free(secret);
            secret = strndup(colon + 1, n - (size_t)(colon + 1 - (char *)dec));
        }
        free(dec);
    }
    if (!grant || strcmp(grant, "client_credentials") != 0) {
        reply_error(resp, 400, "bad_request", "grant_type",
                    "grant_type must be client_credentials");
    } else if (!id || !secret || strcmp(id, e->client_id) != 0 ||
               strcmp(secret, e->client_secret) != 0) {
        pthread_mutex_lock(&e->mu);
        e->stats.invalid_client++;
        pthread_mutex_unlock(&e->mu);
        reply_error(resp, 401, "invalid_client", NULL, "unknown client or wrong secret");
    } else {
        unsigned char raw[16];
        er_token t = {{0}, 0};
        if (RAND_bytes(raw, sizeof(raw)) != 1) {
            reply_error(resp, 500, "internal", NULL, "no randomness");
            goto out;
        }
        for (size_t i = 0; i < sizeof(raw); i++)
            snprintf(t.tok + 2 * i, 3, "%02x", raw[i]);
        pthread_mutex_lock(&e->mu);
        int64_t now = now_utc_locked(e);
        t.expires = now + e->token_ttl_s;
        size_t w = 0; /* drops expired tokens so the list stays short */
        for (size_t i = 0; i < e->ntokens; i++)
            if (e->tokens[i].expires > now)
                e->tokens[w++] = e->tokens[i];
        e->ntokens = w;
        bool stored = false;
        if (e->ntokens == e->cap_tokens) {
            size_t ncap = e->cap_tokens ? e->cap_tokens * 2 : 8;
            er_token *nt = realloc(e->tokens, ncap * sizeof(*nt));
            if (nt) {
                e->tokens = nt;
                e->cap_tokens = ncap;
            }
        }
        if (e->ntokens < e->cap_tokens) {
            e->tokens[e->ntokens++] = t;
            e->stats.tokens_issued++;
            stored = true;
        }
        pthread_mutex_unlock(&e->mu);
        if (!stored) {
            reply_error(resp, 500, "internal", NULL, "out of memory");
            goto out;
        }
        cJSON *o = cJSON_CreateObject();
        if (o && (!add_str(o, "access_token", t.tok) || !add_str(o, "token_type", "Bearer") ||
                  !add_num(o, "expires_in", e->token_ttl_s))) {
            cJSON_Delete(o);
            o = NULL;
        }
        reply(resp, 200, o);
        ah_sim_header_add(resp, "Cache-Control", "no-store");
    }
out:
    free(grant);
    free(id);
    free(secret);
}

/* --- cursors ------------------------------------------------------------------ */

/* Names of the list parameters a cursor remembers, so a client may send the
 * cursor alone or repeat its filters (explicit parameters win). */
static const char *const list_params[] = {"updated_after", "status", "position_id", "expand",
                                          "per_page"};
#define NPARAMS NELEM(list_params)

static char *cursor_encode(int kind, int64_t u, long id, const char *const vals[NPARAMS],
                           size_t pad)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *q = o ? cJSON_CreateObject() : NULL;
    bool ok = add_item(o, "q", q) && add_str(o, "k", kind_plural[kind]) &&
              add_num(o, "u", (long)u) && add_num(o, "i", id);
    if (ok && pad > 0) {
        char *fill = malloc(pad + 1);
        ok = fill != NULL;
        if (ok) {
            memset(fill, 'x', pad);
            fill[pad] = '\0';
            ok = add_str(o, "p", fill);
        }
        free(fill);
    }
    for (size_t i = 0; ok && i < NPARAMS; i++)
        if (vals[i])
            ok = add_str(q, list_params[i], vals[i]);
    char *txt = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!txt)
        return NULL;
    char *b = b64_encode((unsigned char *)txt, strlen(txt));
    free(txt);
    if (!b)
        return NULL;
    /* base64url without padding: nothing to escape in a query string. */
    size_t n = 0;
    for (char *c = b; *c; c++) {
        if (*c == '=')
            break;
        b[n++] = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    }
    b[n] = '\0';
    return b;
}

static cJSON *cursor_decode(const char *s, int kind, int64_t *u, long *id)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_CURSOR || n % 4 == 1)
        return NULL;
    char *b = malloc(n + 4);
    if (!b)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || c == '-' || c == '_')) {
            free(b);
            return NULL;
        }
        b[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    while (n % 4)
        b[n++] = '=';
    b[n] = '\0';
    size_t len;
    unsigned char *raw = b64_decode(b, &len);
    free(b);
    if (!raw)
        return NULL;
    cJSON *o = cJSON_ParseWithLength((const char *)raw, len);
    free(raw);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "k");
    const cJSON *jv = cJSON_GetObjectItemCaseSensitive(o, "u");
    const cJSON *ji = cJSON_GetObjectItemCaseSensitive(o, "i");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "q");
    if (!cJSON_IsObject(o) || !cJSON_IsString(k) || strcmp(k->valuestring, kind_plural[kind]) ||
        !cJSON_IsNumber(jv) || !json_int(ji, id) || (q && !cJSON_IsObject(q))) {
        cJSON_Delete(o);
        return NULL;
    }
    *u = (int64_t)jv->valuedouble;
    return o;
}

/* --- lists ----------------------------------------------------------------------- */

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

static int parse_expand(const char *s, int kind, unsigned *out)
{
    *out = 0;
    if (!s || !*s)
        return 0;
    char *d = strdup(s), *save = NULL;
    if (!d)
        return -1;
    int rc = 0;
    for (char *t = strtok_r(d, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "custom_fields") == 0)
            *out |= EX_CF;
        else if (strcmp(t, "hiring_team") == 0 && kind == K_POS)
            *out |= EX_HT;
        else
            rc = -1;
    }
    free(d);
    return rc;
}

static void h_list(ah_erecruit_sim *e, int kind, const ah_sim_req *req, ah_sim_resp *resp)
{
    const char *vals[NPARAMS] = {0};
    cJSON *cur = NULL;
    int64_t cu = 0;
    long ci = 0;
    const char *cs = ah_sim_query(req, "cursor");
    if (cs && *cs) {
        cur = cursor_decode(cs, kind, &cu, &ci);
        if (!cur) {
            reply_error(resp, 400, "bad_request", "cursor", "invalid cursor");
            return;
        }
    }
    const cJSON *cq = cJSON_GetObjectItemCaseSensitive(cur, "q");
    for (size_t i = 0; i < NPARAMS; i++) {
        vals[i] = ah_sim_query(req, list_params[i]);
        if (!vals[i]) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(cq, list_params[i]);
            vals[i] = cJSON_IsString(v) ? v->valuestring : NULL;
        }
    }
    const char *after_s = vals[0], *status_s = vals[1], *pid_s = vals[2], *expand_s = vals[3],
               *per_s = vals[4];

    long per_page = 100;
    if (per_s && *per_s) {
        char *end;
        errno = 0;
        per_page = strtol(per_s, &end, 10);
        if (errno || *end || per_page < 1 || per_page > e->max_per_page) {
            reply_error(resp, 400, "bad_request", "per_page", "per_page must be 1..%d",
                        e->max_per_page);
            goto out;
        }
    }
    int64_t after = 0;
    bool has_after = after_s && *after_s;
    if (has_after && parse_stamp(after_s, &after) != 0) {
        reply_error(resp, 400, "bad_request", "updated_after",
                    "updated_after must be YYYY-MM-DDTHH:MM:SS (local time, no offset)");
        goto out;
    }
    unsigned smask = 0;
    if (status_s && *status_s && kind == K_POS) {
        char *d = strdup(status_s), *save = NULL;
        if (!d) {
            reply(resp, 500, NULL);
            goto out;
        }
        bool bad = false;
        for (char *t = strtok_r(d, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int found = -1;
            for (int i = 0; i < NSTATUS; i++)
                if (strcmp(t, statuses[i]) == 0)
                    found = i;
            if (found < 0)
                bad = true;
            else
                smask |= 1u << found;
        }
        free(d);
        if (bad) {
            reply_error(resp, 400, "bad_request", "status",
                        "status must be a list of draft, open, closed, filled");
            goto out;
        }
    }
    long *pids = NULL;
    size_t npids = 0;
    if (pid_s && *pid_s && kind == K_SUB) {
        size_t cap = 1;
        for (const char *c = pid_s; *c; c++)
            cap += *c == ',';
        pids = malloc(cap * sizeof(*pids));
        char *d = strdup(pid_s), *save = NULL;
        if (!pids || !d) {
            free(pids);
            free(d);
            reply(resp, 500, NULL);
            goto out;
        }
        bool bad = false;
        for (char *t = strtok_r(d, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (!parse_id(t, &pids[npids++]))
                bad = true;
        free(d);
        if (bad || npids == 0) {
            free(pids);
            reply_error(resp, 400, "bad_request", "position_id",
                        "position_id must be a list of ids");
            goto out;
        }
        qsort(pids, npids, sizeof(*pids), cmp_long);
    }
    unsigned expand;
    if (parse_expand(expand_s, kind, &expand) != 0) {
        free(pids);
        reply_error(resp, 400, "bad_request", "expand", "unknown expand value");
        goto out;
    }

    cJSON *root = cJSON_CreateObject();
    cJSON *data = cJSON_CreateArray();
    bool ok = root && add_item(root, "data", data);
    bool more = false;
    int64_t lu = 0;
    long li = 0;
    pthread_mutex_lock(&e->mu);
    const er_kind *k = &e->k[kind];
    size_t i = 0;
    if (has_after)
        i = order_upper(k, after, LONG_MAX);
    if (cur) {
        size_t j = order_upper(k, cu, ci);
        if (j > i)
            i = j;
    }
    long taken = 0;
    for (; ok && i < k->n; i++) {
        const er_rec *r = k->order[i];
        if (smask && !(smask & (1u << r->status)))
            continue;
        if (pids && !bsearch(&r->position_id, pids, npids, sizeof(*pids), cmp_long))
            continue;
        if (taken == per_page) {
            more = true;
            break;
        }
        cJSON *item = render(e, kind, r, expand);
        if (item && r->id == e->odd_updated_at_id) {
            /* A date-time's characters, far longer than any date-time. */
            char odd[101];
            memset(odd, '0', sizeof odd - 1);
            memcpy(odd, "2025-10-06T12:00:00.", 20);
            odd[sizeof odd - 1] = '\0';
            cJSON *v = cJSON_CreateString(odd);
            ok = v && cJSON_ReplaceItemInObjectCaseSensitive(item, "updated_at", v);
            if (!ok)
                cJSON_Delete(v);
        }
        ok = ok && item && cJSON_AddItemToArray(data, item);
        if (!ok)
            cJSON_Delete(item);
        taken++;
        lu = r->upd;
        li = r->id;
    }
    pthread_mutex_unlock(&e->mu);
    /* An oversized page: the last item again and again, past per_page. */
    const cJSON *last = ok && e->page_excess > 0 ? cJSON_GetArrayItem(data, (int)taken - 1) : NULL;
    for (size_t x = 0; last != NULL && ok && x < e->page_excess; x++) {
        cJSON *dup = cJSON_Duplicate(last, true);
        ok = dup && cJSON_AddItemToArray(data, dup);
        if (!ok)
            cJSON_Delete(dup);
    }
    free(pids);
    if (ok && more) {
        char *c = cursor_encode(kind, lu, li, vals, e->cursor_pad);
        ok = c && cJSON_AddStringToObject(root, "next_cursor", c);
        free(c);
    } else if (ok) {
        ok = cJSON_AddNullToObject(root, "next_cursor") != NULL;
    }
    if (!ok) {
        if (!root)
            cJSON_Delete(data);
        cJSON_Delete(root);
        root = NULL;
    }
    reply(resp, 200, root);
out:
    cJSON_Delete(cur);
}

/* --- single records and writes --------------------------------------------------- */

static cJSON *parse_body(const ah_sim_req *req, ah_sim_resp *resp)
{
    cJSON *b = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(b)) {
        cJSON_Delete(b);
        reply_error(resp, 400, "bad_request", NULL, "body must be a JSON object");
        return NULL;
    }
    return b;
}

static bool known_stage(long id)
{
    for (size_t i = 0; i < NSTAGES; i++)
        if (stages[i].id == id)
            return true;
    return false;
}

static bool known_reason(long id)
{
    for (size_t i = 0; i < NREASONS; i++)
        if (reasons[i].id == id)
            return true;
    return false;
}

static void h_create_submission(ah_erecruit_sim *e, const ah_sim_req *req, ah_sim_resp *resp)
{
    cJSON *b = parse_body(req, resp);
    if (!b)
        return;
    long cid = 0, pid = 0, sid = stages[0].id;
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(b, "stage_id");
    const cJSON *xref = cJSON_GetObjectItemCaseSensitive(b, "external_ref");
    if (!json_int(cJSON_GetObjectItemCaseSensitive(b, "contact_id"), &cid)) {
        reply_error(resp, 422, "validation_failed", "contact_id", "contact_id must be an id");
    } else if (!json_int(cJSON_GetObjectItemCaseSensitive(b, "position_id"), &pid)) {
        reply_error(resp, 422, "validation_failed", "position_id", "position_id must be an id");
    } else if (js && !cJSON_IsNull(js) && (!json_int(js, &sid) || !known_stage(sid))) {
        reply_error(resp, 422, "validation_failed", "stage_id", "unknown stage_id");
    } else if (xref && !cJSON_IsNull(xref) && !cJSON_IsString(xref)) {
        reply_error(resp, 422, "validation_failed", "external_ref",
                    "external_ref must be a string");
    } else {
        cJSON *out = NULL;
        int status = 201;
        pthread_mutex_lock(&e->mu);
        if (!find_rec(&e->k[K_CON], cid)) {
            status = -1;
        } else if (!find_rec(&e->k[K_POS], pid)) {
            status = -2;
        } else {
            er_rec *r = calloc(1, sizeof(*r));
            if (r) {
                r->id = e->k[K_SUB].next_id;
                r->upd = r->created = now_local_locked(e);
                r->contact_id = cid;
                r->position_id = pid;
                r->stage_id = (int)sid;
                r->ref = cJSON_IsString(xref) ? strdup(xref->valuestring) : NULL;
                if (kind_insert(&e->k[K_SUB], r) != 0) {
                    rec_free(r);
                    r = NULL;
                }
            }
            out = r ? render(e, K_SUB, r, 0) : NULL;
        }
        pthread_mutex_unlock(&e->mu);
        if (status == -1)
            reply_error(resp, 422, "validation_failed", "contact_id", "no contact %ld", cid);
        else if (status == -2)
            reply_error(resp, 422, "validation_failed", "position_id", "no position %ld", pid);
        else
            reply(resp, 201, out);
    }
    cJSON_Delete(b);
}

/* POST /submissions/{id}/{stage,reject,status}. */
static void h_submission_action(ah_erecruit_sim *e, long id, const char *action,
                                const ah_sim_req *req, ah_sim_resp *resp)
{
    cJSON *b = parse_body(req, resp);
    if (!b)
        return;
    long v = 0;
    const cJSON *jv = NULL;
    const char *field = strcmp(action, "stage") == 0    ? "stage_id"
                        : strcmp(action, "reject") == 0 ? "reason_id"
                                                        : "status_id";
    jv = cJSON_GetObjectItemCaseSensitive(b, field);
    bool is_null = cJSON_IsNull(jv) && strcmp(action, "status") == 0;
    bool valid = is_null || json_int(jv, &v);
    pthread_mutex_lock(&e->mu);
    er_kind *k = &e->k[K_SUB];
    er_rec *r = find_rec(k, id);
    cJSON *out = NULL;
    int status = 200;
    if (!r) {
        status = 404;
    } else if (!valid) {
        status = 4220;
    } else if (strcmp(action, "stage") == 0) {
        if (!known_stage(v)) {
            status = 4221;
        } else {
            r->acted = ++e->nacted;
            if (r->stage_id != v) {
                r->stage_id = (int)v;
                set_upd(k, r, now_local_locked(e));
            }
        }
    } else if (strcmp(action, "reject") == 0) {
        if (!known_reason(v)) {
            status = 4221;
        } else if (r->rejected) {
            status = 409;
        } else {
            r->rejected = true;
            r->reason_id = v;
            r->acted = ++e->nacted;
            set_upd(k, r, now_local_locked(e));
        }
    } else if (r->status_id != v) {
        r->status_id = v;
        set_upd(k, r, now_local_locked(e));
    }
    if (status == 200)
        out = render(e, K_SUB, r, 0);
    pthread_mutex_unlock(&e->mu);
    if (status == 404)
        reply_error(resp, 404, "not_found", NULL, "no submission %ld", id);
    else if (status == 4220)
        reply_error(resp, 422, "validation_failed", field, "%s must be an id", field);
    else if (status == 4221)
        reply_error(resp, 422, "validation_failed", field, "unknown %s %ld", field, v);
    else if (status == 409)
        reply_error(resp, 409, "conflict", NULL, "submission %ld is already rejected", id);
    else
        reply(resp, 200, out);
    cJSON_Delete(b);
}

static void h_tag(ah_erecruit_sim *e, long id, const ah_sim_req *req, ah_sim_resp *resp)
{
    cJSON *b = parse_body(req, resp);
    if (!b)
        return;
    long tag = 0;
    bool valid = json_int(cJSON_GetObjectItemCaseSensitive(b, "tag_id"), &tag);
    cJSON_Delete(b);
    int status = 200;
    cJSON *out = NULL;
    pthread_mutex_lock(&e->mu);
    er_rec *r = find_rec(&e->k[K_CON], id);
    if (!r) {
        status = 404;
    } else if (!valid) {
        status = 422;
    } else {
        int added = add_tag(r, tag);
        if (added > 0)
            set_upd(&e->k[K_CON], r, now_local_locked(e));
        out = added >= 0 ? render(e, K_CON, r, 0) : NULL;
    }
    pthread_mutex_unlock(&e->mu);
    if (status == 404)
        reply_error(resp, 404, "not_found", NULL, "no contact %ld", id);
    else if (status == 422)
        reply_error(resp, 422, "validation_failed", "tag_id", "tag_id must be an id");
    else
        reply(resp, 200, out);
}

static void h_notes(ah_erecruit_sim *e, int kind, long id, const ah_sim_req *req,
                    ah_sim_resp *resp)
{
    bool post = strcmp(req->method, "POST") == 0;
    cJSON *b = NULL;
    const char *html = NULL;
    const cJSON *xref = NULL;
    long action = 0;
    if (post) {
        b = parse_body(req, resp);
        if (!b)
            return;
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(b, "body_html");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(b, "action_id");
        xref = cJSON_GetObjectItemCaseSensitive(b, "external_ref");
        if (xref && !cJSON_IsNull(xref) && !cJSON_IsString(xref)) {
            reply_error(resp, 422, "validation_failed", "external_ref",
                        "external_ref must be a string");
            cJSON_Delete(b);
            return;
        }
        if (!cJSON_IsString(h) || !h->valuestring[0]) {
            reply_error(resp, 422, "validation_failed", "body_html",
                        "body_html must be a non-empty string");
            cJSON_Delete(b);
            return;
        }
        if (a && !cJSON_IsNull(a) && !json_int(a, &action)) {
            reply_error(resp, 422, "validation_failed", "action_id", "action_id must be an id");
            cJSON_Delete(b);
            return;
        }
        html = h->valuestring;
    }
    cJSON *out = NULL;
    bool found = false;
    pthread_mutex_lock(&e->mu);
    er_rec *r = find_rec(&e->k[kind], id);
    if (r) {
        found = true;
        if (!post) {
            out = render_notes(r);
        } else {
            er_note n = {.id = e->next_note_id, .action_id = action,
                         .created = now_local_locked(e)};
            n.body_html = strdup(html);
            n.ref = cJSON_IsString(xref) ? strdup(xref->valuestring) : NULL;
            er_note *nn = n.body_html ? realloc(r->notes, (r->nnotes + 1) * sizeof(*nn)) : NULL;
            if (nn) {
                r->notes = nn;
                r->notes[r->nnotes++] = n;
                e->next_note_id++;
                out = render_note(&n);
            } else {
                free(n.body_html);
                free(n.ref);
            }
        }
    }
    pthread_mutex_unlock(&e->mu);
    cJSON_Delete(b);
    if (!found)
        reply_error(resp, 404, "not_found", NULL, "no %s %ld", kind_single[kind], id);
    else if (post)
        reply(resp, 201, out);
    else
        reply_data(resp, 200, out);
}

static bool ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static void h_documents(ah_erecruit_sim *e, int kind, long id, const ah_sim_req *req,
                        ah_sim_resp *resp)
{
    bool post = strcmp(req->method, "POST") == 0;
    cJSON *b = NULL;
    er_doc d = {0};
    if (post) {
        b = parse_body(req, resp);
        if (!b)
            return;
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(b, "filename");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(b, "content_type");
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(b, "data_base64");
        const cJSON *kd = cJSON_GetObjectItemCaseSensitive(b, "kind");
        const cJSON *xr = cJSON_GetObjectItemCaseSensitive(b, "external_ref");
        unsigned char *raw = NULL;
        if (!cJSON_IsString(fn) || !fn->valuestring[0]) {
            reply_error(resp, 422, "validation_failed", "filename",
                        "filename must be a non-empty string");
        } else if (ct && !cJSON_IsNull(ct) && !cJSON_IsString(ct)) {
            reply_error(resp, 422, "validation_failed", "content_type",
                        "content_type must be a string");
        } else if (kd && !cJSON_IsNull(kd) && !cJSON_IsString(kd)) {
            reply_error(resp, 422, "validation_failed", "kind", "kind must be a string");
        } else if (xr && !cJSON_IsNull(xr) && !cJSON_IsString(xr)) {
            reply_error(resp, 422, "validation_failed", "external_ref",
                        "external_ref must be a string");
        } else if (!cJSON_IsString(data) || !(raw = b64_decode(data->valuestring, &d.size)) ||
                   d.size == 0) {
            reply_error(resp, 422, "validation_failed", "data_base64",
                        "data_base64 must be non-empty, padded base64");
        } else {
            d.filename = strdup(fn->valuestring);
            d.content_type = strdup(cJSON_IsString(ct) ? ct->valuestring
                                                       : "application/octet-stream");
            d.kind = cJSON_IsString(kd) ? strdup(kd->valuestring) : NULL;
            d.ref = cJSON_IsString(xr) ? strdup(xr->valuestring) : NULL;
            d.data_b64 = b64_encode(raw, d.size); /* normalised: no whitespace */
            if (!d.filename || !d.content_type || (cJSON_IsString(kd) && !d.kind) ||
                !d.data_b64) {
                reply(resp, 500, NULL);
                free(raw);
                goto fail;
            }
        }
        free(raw);
        if (!d.filename) {
            cJSON_Delete(b);
            return;
        }
    }
    cJSON *out = NULL;
    bool found = false;
    pthread_mutex_lock(&e->mu);
    er_rec *r = find_rec(&e->k[kind], id);
    if (r) {
        found = true;
        if (!post) {
            out = render_docs(r);
        } else {
            d.id = e->next_doc_id;
            d.created = now_local_locked(e);
            if (add_doc(r, &d) == 0) {
                e->next_doc_id++;
                out = render_doc(&d);
                memset(&d, 0, sizeof(d)); /* owned by the record now */
            }
        }
    }
    pthread_mutex_unlock(&e->mu);
    if (!found)
        reply_error(resp, 404, "not_found", NULL, "no %s %ld", kind_single[kind], id);
    else if (post)
        reply(resp, 201, out);
    else
        reply_data(resp, 200, out);
fail:
    free(d.ref);
    free(d.filename);
    free(d.content_type);
    free(d.kind);
    free(d.data_b64);
    cJSON_Delete(b);
}

/* The newest .pdf uploaded with kind "resume" (WIRE.md, Documents). */
static const er_doc *find_resume(const er_rec *r)
{
    for (size_t i = r->ndocs; i-- > 0;) {
        const er_doc *d = &r->docs[i];
        if (d->kind && strcmp(d->kind, "resume") == 0 && ends_with_ci(d->filename, ".pdf"))
            return d;
    }
    return NULL;
}

static void h_resume(ah_erecruit_sim *e, long id, ah_sim_resp *resp)
{
    cJSON *out = NULL;
    int status = 200;
    pthread_mutex_lock(&e->mu);
    er_rec *r = find_rec(&e->k[K_CON], id);
    const er_doc *d = r ? find_resume(r) : NULL;
    if (!r || !d) {
        status = 404;
    } else {
        char pdf[256];
        char *gen = NULL;
        if (!d->data_b64) {
            int n = gen_resume_pdf(r->id, pdf, sizeof(pdf));
            gen = b64_encode((unsigned char *)pdf, (size_t)n);
        }
        const char *data = d->data_b64 ? d->data_b64 : gen;
        out = cJSON_CreateObject();
        if (out && (!data || !add_str(out, "filename", d->filename) ||
                    !add_str(out, "content_type", d->content_type) ||
                    !add_str(out, "data_base64", data))) {
            cJSON_Delete(out);
            out = NULL;
        }
        free(gen);
    }
    pthread_mutex_unlock(&e->mu);
    if (status == 404)
        reply_error(resp, 404, "not_found", NULL, r ? "contact %ld has no resume"
                                                    : "no contact %ld", id);
    else
        reply(resp, 200, out);
}

static const cf_def *find_cf(int kind, const char *key)
{
    for (size_t i = 0; i < cf_count[kind]; i++)
        if (strcmp(cf_defs[kind][i].key, key) == 0)
            return &cf_defs[kind][i];
    return NULL;
}

/* NULL when v is acceptable for d, else why not. */
static const char *cf_check(const cf_def *d, const cJSON *v)
{
    if (cJSON_IsNull(v))
        return NULL;
    switch (d->type) {
    case CF_TEXT:
        return cJSON_IsString(v) ? NULL : "must be a string";
    case CF_NUMBER:
        return cJSON_IsNumber(v) ? NULL : "must be a number";
    case CF_DATE:
        return cJSON_IsString(v) && valid_date(v->valuestring) ? NULL
                                                              : "must be a date YYYY-MM-DD";
    case CF_SELECT:
        if (cJSON_IsString(v))
            for (size_t i = 0; d->values[i]; i++)
                if (strcmp(d->values[i], v->valuestring) == 0)
                    return NULL;
        return "must be one of the field's options";
    }
    return "unknown type";
}

static void h_custom_values(ah_erecruit_sim *e, int kind, long id, const ah_sim_req *req,
                            ah_sim_resp *resp)
{
    bool patch = strcmp(req->method, "PATCH") == 0;
    cJSON *b = NULL;
    const cJSON *values = NULL;
    if (patch) {
        b = parse_body(req, resp);
        if (!b)
            return;
        values = cJSON_GetObjectItemCaseSensitive(b, "values");
        if (!cJSON_IsObject(values)) {
            reply_error(resp, 422, "validation_failed", "values", "values must be an object");
            cJSON_Delete(b);
            return;
        }
        /* All or nothing: every key is checked before anything changes. */
        for (const cJSON *v = values->child; v; v = v->next) {
            const cf_def *d = find_cf(kind, v->string);
            const char *why = d ? cf_check(d, v) : "is not a custom field";
            if (why) {
                reply_error(resp, 422, "validation_failed", v->string, "%s %s: %s",
                            kind_single[kind], v->string, why);
                cJSON_Delete(b);
                return;
            }
        }
    }
    cJSON *out = NULL;
    bool found = false;
    pthread_mutex_lock(&e->mu);
    er_kind *k = &e->k[kind];
    er_rec *r = find_rec(k, id);
    if (r) {
        found = true;
        if (patch) {
            cJSON *cur = custom_values(e, kind, r);
            bool ok = cur != NULL;
            for (const cJSON *v = values->child; ok && v; v = v->next) {
                cJSON *dup = cJSON_Duplicate(v, 1);
                ok = dup && cJSON_ReplaceItemInObjectCaseSensitive(cur, v->string, dup);
                if (!ok)
                    cJSON_Delete(dup);
            }
            if (ok) {
                cJSON_Delete(r->custom);
                r->custom = cur;
                set_upd(k, r, now_local_locked(e));
            } else {
                cJSON_Delete(cur);
            }
        }
        out = custom_values(e, kind, r);
    }
    pthread_mutex_unlock(&e->mu);
    cJSON_Delete(b);
    if (!found)
        reply_error(resp, 404, "not_found", NULL, "no %s %ld", kind_single[kind], id);
    else
        reply_data(resp, 200, out);
}

static void h_get(ah_erecruit_sim *e, int kind, long id, const ah_sim_req *req,
                  ah_sim_resp *resp)
{
    unsigned expand;
    if (parse_expand(ah_sim_query(req, "expand"), kind, &expand) != 0) {
        reply_error(resp, 400, "bad_request", "expand", "unknown expand value");
        return;
    }
    cJSON *out = NULL;
    pthread_mutex_lock(&e->mu);
    er_rec *r = find_rec(&e->k[kind], id);
    if (r)
        out = render(e, kind, r, expand);
    pthread_mutex_unlock(&e->mu);
    if (!r)
        reply_error(resp, 404, "not_found", NULL, "no %s %ld", kind_single[kind], id);
    else
        reply(resp, 200, out);
}

static bool field_matches(const char *have, const char *want)
{
    return !want || !*want || (have && strcasecmp(have, want) == 0);
}

static void h_search(ah_erecruit_sim *e, const ah_sim_req *req, ah_sim_resp *resp)
{
    static const char *const fields[] = {"first_name", "last_name", "email", "phone"};
    const char *want[4];
    bool any = false;
    for (int i = 0; i < 4; i++) {
        want[i] = ah_sim_query(req, fields[i]);
        any = any || (want[i] && *want[i]);
    }
    if (!any) {
        reply_error(resp, 400, "bad_request", NULL,
                    "give at least one of first_name, last_name, email, phone");
        return;
    }
    cJSON *data = cJSON_CreateArray();
    bool ok = data != NULL;
    pthread_mutex_lock(&e->mu);
    const er_kind *k = &e->k[K_CON];
    for (size_t i = 0; ok && i < k->n; i++) {
        const er_rec *r = k->byid[i];
        if (!field_matches(r->str[C_FIRST], want[0]) || !field_matches(r->str[C_LAST], want[1]) ||
            !field_matches(r->str[C_EMAIL], want[2]) || !field_matches(r->str[C_PHONE], want[3]))
            continue;
        cJSON *item = render(e, K_CON, r, 0);
        ok = item && cJSON_AddItemToArray(data, item);
        if (!ok)
            cJSON_Delete(item);
    }
    pthread_mutex_unlock(&e->mu);
    if (!ok) {
        cJSON_Delete(data);
        data = NULL;
    }
    reply_data(resp, 200, data);
}

static void h_stages(ah_sim_resp *resp)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < NSTAGES; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!add_item(a, NULL, o) || !add_num(o, "id", stages[i].id) ||
            !add_str(o, "name", stages[i].name) || !add_num(o, "order", stages[i].order)) {
            cJSON_Delete(a);
            a = NULL;
        }
    }
    reply_data(resp, 200, a);
}

static void h_reasons(ah_sim_resp *resp)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < NREASONS; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!add_item(a, NULL, o) || !add_num(o, "id", reasons[i].id) ||
            !add_str(o, "name", reasons[i].name)) {
            cJSON_Delete(a);
            a = NULL;
        }
    }
    reply_data(resp, 200, a);
}

static void h_cf_defs(const ah_sim_req *req, ah_sim_resp *resp)
{
    const char *ent = ah_sim_query(req, "entity");
    int kind = -1;
    for (int i = 0; ent && i < K_N; i++)
        if (strcmp(ent, kind_single[i]) == 0)
            kind = i;
    if (kind < 0) {
        reply_error(resp, 400, "bad_request", "entity",
                    "entity must be submission, contact or position");
        return;
    }
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < cf_count[kind]; i++) {
        const cf_def *d = &cf_defs[kind][i];
        cJSON *o = cJSON_CreateObject();
        bool ok = add_item(a, NULL, o) && add_str(o, "key", d->key) &&
                  add_str(o, "label", d->label) && add_str(o, "type", cf_type_names[d->type]);
        if (ok && d->type == CF_SELECT) {
            cJSON *opts = cJSON_CreateArray();
            ok = add_item(o, "options", opts);
            for (size_t j = 0; ok && d->values[j]; j++)
                ok = add_item(opts, NULL, cJSON_CreateString(d->values[j]));
        }
        if (!ok) {
            cJSON_Delete(a);
            a = NULL;
        }
    }
    reply_data(resp, 200, a);
}

/* --- /api/v2 dispatch ------------------------------------------------------------ */

static void method_not_allowed(const ah_sim_req *req, ah_sim_resp *resp)
{
    reply_error(resp, 405, "method_not_allowed", NULL, "%s not allowed on %s", req->method,
                req->path);
}

static void h_api(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    ah_erecruit_sim *e = arg;
    count_request(e, req->method, req->path);
    int wait = rate_limit(e);
    if (wait > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", wait);
        reply_error(resp, 429, "rate_limited", NULL, "too many requests");
        ah_sim_header_add(resp, "Retry-After", ra);
        return;
    }
    if (!token_valid(e, ah_sim_header(req, "Authorization"))) {
        pthread_mutex_lock(&e->mu);
        e->stats.invalid_token++;
        pthread_mutex_unlock(&e->mu);
        reply_error(resp, 401, "invalid_token", NULL, "missing, unknown or expired token");
        ah_sim_header_add(resp, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        return;
    }

    char path[256];
    snprintf(path, sizeof(path), "%s", req->path + strlen(API_PREFIX));
    char *seg[5] = {0}, *save = NULL;
    int n = 0;
    for (char *t = strtok_r(path, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (n == 5) {
            n = 6;
            break;
        }
        seg[n++] = t;
    }
    const char *m = req->method;
    bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0,
         patch = strcmp(m, "PATCH") == 0;
    int kind = n >= 1 ? kind_from_str(seg[0]) : -1;
    long id = 0;

    if (n == 1 && strcmp(seg[0], "stages") == 0) {
        get ? h_stages(resp) : method_not_allowed(req, resp);
    } else if (n == 1 && strcmp(seg[0], "disposition-reasons") == 0) {
        get ? h_reasons(resp) : method_not_allowed(req, resp);
    } else if (n == 1 && strcmp(seg[0], "custom-fields") == 0) {
        get ? h_cf_defs(req, resp) : method_not_allowed(req, resp);
    } else if (kind < 0 || strcmp(seg[0], kind_plural[kind]) != 0 || n > 3) {
        reply_error(resp, 404, "not_found", NULL, "no such endpoint: %s", req->path);
    } else if (n == 1) {
        if (get)
            h_list(e, kind, req, resp);
        else if (post && kind == K_SUB)
            h_create_submission(e, req, resp);
        else
            method_not_allowed(req, resp);
    } else if (n == 2 && kind == K_CON && strcmp(seg[1], "search") == 0) {
        get ? h_search(e, req, resp) : method_not_allowed(req, resp);
    } else if (!parse_id(seg[1], &id)) {
        reply_error(resp, 404, "not_found", NULL, "no %s %s", kind_single[kind], seg[1]);
    } else if (n == 2) {
        get ? h_get(e, kind, id, req, resp) : method_not_allowed(req, resp);
    } else if (strcmp(seg[2], "custom-fields") == 0) {
        get || patch ? h_custom_values(e, kind, id, req, resp) : method_not_allowed(req, resp);
    } else if (kind != K_POS && strcmp(seg[2], "notes") == 0) {
        get || post ? h_notes(e, kind, id, req, resp) : method_not_allowed(req, resp);
    } else if (kind != K_POS && strcmp(seg[2], "documents") == 0) {
        get || post ? h_documents(e, kind, id, req, resp) : method_not_allowed(req, resp);
    } else if (kind == K_SUB && (strcmp(seg[2], "stage") == 0 || strcmp(seg[2], "reject") == 0 ||
                                 strcmp(seg[2], "status") == 0)) {
        post ? h_submission_action(e, id, seg[2], req, resp) : method_not_allowed(req, resp);
    } else if (kind == K_CON && strcmp(seg[2], "tags") == 0) {
        post ? h_tag(e, id, req, resp) : method_not_allowed(req, resp);
    } else if (kind == K_CON && strcmp(seg[2], "resume") == 0) {
        get ? h_resume(e, id, resp) : method_not_allowed(req, resp);
    } else {
        reply_error(resp, 404, "not_found", NULL, "no such endpoint: %s", req->path);
    }
}

/* --- lifecycle -------------------------------------------------------------------- */

ah_erecruit_sim *ah_erecruit_sim_attach(ah_sim *sim, const ah_erecruit_opts *o)
{
    ah_erecruit_opts def = {.positions = 100, .contacts = 100, .submissions = 100};
    if (!sim)
        return NULL;
    if (!o)
        o = &def;
    ah_erecruit_sim *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    if (pthread_mutex_init(&e->mu, NULL) != 0) {
        free(e);
        return NULL;
    }
    e->seed = o->seed;
    e->tz_s = (o->tz_offset_minutes || o->tz_set ? o->tz_offset_minutes : 180) * 60;
    e->token_ttl_s = o->token_ttl_s > 0 ? o->token_ttl_s : 3600;
    e->max_per_page = o->max_per_page > 0 ? o->max_per_page : 500;
    e->cursor_pad = o->cursor_pad;
    e->odd_updated_at_id = o->odd_updated_at_id;
    e->page_excess = o->page_excess;
    e->rps = o->rate_limit_rps;
    e->bucket = e->rps < 1 ? 1 : e->rps;
    clock_gettime(CLOCK_MONOTONIC, &e->bucket_t);
    e->client_id = strdup(o->client_id ? o->client_id : "atshub");
    e->client_secret = strdup(o->client_secret ? o->client_secret : "s3cret");
    e->fixed_utc = o->clock_utc;
    /* The current hour, so that two sims started close together agree. */
    time_t anchor = o->clock_utc ? o->clock_utc : time(NULL) / 3600 * 3600;
    e->anchor_local = (int64_t)anchor + e->tz_s;
    e->next_note_id = 1;
    e->next_doc_id = 1;
    if (!e->client_id || !e->client_secret ||
        generate(e, o->positions, o->contacts, o->submissions) != 0 ||
        ah_sim_route(sim, "POST", TOKEN_PATH, h_token, e) != 0 ||
        ah_sim_route(sim, "*", API_PREFIX, h_api, e) != 0) {
        ah_erecruit_sim_free(e);
        return NULL;
    }
    return e;
}

void ah_erecruit_sim_free(ah_erecruit_sim *e)
{
    if (!e)
        return;
    for (int k = 0; k < K_N; k++) {
        for (size_t i = 0; i < e->k[k].n; i++)
            rec_free(e->k[k].byid[i]);
        free(e->k[k].byid);
        free(e->k[k].order);
    }
    for (size_t i = 0; i < e->ncounts; i++) {
        free(e->counts[i].method);
        free(e->counts[i].path);
    }
    free(e->counts);
    free(e->tokens);
    free(e->client_id);
    free(e->client_secret);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

int ah_erecruit_sim_register(ah_sim *sim, uint64_t seed, size_t data_size, long token_ttl_s,
                             int tz_offset_minutes, void **state)
{
    ah_erecruit_opts o = {
        .seed = seed,
        .positions = data_size,
        .contacts = data_size,
        .submissions = data_size,
        .tz_offset_minutes = tz_offset_minutes,
        .tz_set = 1,
        .token_ttl_s = token_ttl_s > 0 && token_ttl_s < INT_MAX ? (int)token_ttl_s : 3600,
    };
    ah_erecruit_sim *e = ah_erecruit_sim_attach(sim, &o);
    if (state)
        *state = e;
    return e ? 0 : -1;
}

void ah_erecruit_sim_free_state(void *state)
{
    ah_erecruit_sim_free(state);
}

/* --- test inspection ----------------------------------------------------------------- */

void ah_erecruit_sim_now(ah_erecruit_sim *e, time_t utc)
{
    pthread_mutex_lock(&e->mu);
    e->fixed_utc = utc;
    pthread_mutex_unlock(&e->mu);
}

void ah_erecruit_sim_local_now(ah_erecruit_sim *e, char *buf, size_t size)
{
    char b[20];
    pthread_mutex_lock(&e->mu);
    fmt_stamp(now_local_locked(e), b);
    pthread_mutex_unlock(&e->mu);
    snprintf(buf, size, "%s", b);
}

int ah_erecruit_sim_touch(ah_erecruit_sim *e, const char *kind, long id, const char *local_time)
{
    int k = kind_from_str(kind);
    int64_t t = 0;
    if (k < 0 || (local_time && parse_stamp(local_time, &t) != 0))
        return -1;
    pthread_mutex_lock(&e->mu);
    er_rec *r = find_rec(&e->k[k], id);
    if (r)
        set_upd(&e->k[k], r, local_time ? t : now_local_locked(e));
    pthread_mutex_unlock(&e->mu);
    return r ? 0 : -1;
}

int ah_erecruit_sim_delete(ah_erecruit_sim *e, const char *kind, long id)
{
    int k = kind_from_str(kind);
    if (k < 0)
        return -1;
    pthread_mutex_lock(&e->mu);
    er_rec *r = find_rec(&e->k[k], id);
    if (r)
        kind_remove(&e->k[k], r);
    pthread_mutex_unlock(&e->mu);
    rec_free(r);
    return r ? 0 : -1;
}

static bool put_str(const cJSON *j, const char *key, er_rec *r, int slot, bool *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v)
        return true;
    if (!cJSON_IsString(v) && !cJSON_IsNull(v)) {
        *bad = true;
        return false;
    }
    return set_str(r, slot, cJSON_IsString(v) ? v->valuestring : NULL) == 0;
}

static bool put_id(const cJSON *j, const char *key, long *out, bool nullable, bool *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v)
        return true;
    if (nullable && cJSON_IsNull(v)) {
        *out = 0;
        return true;
    }
    if (!json_int(v, out)) {
        *bad = true;
        return false;
    }
    return true;
}

/* Applies the fields of j to r (a copy: the caller swaps it in on success). */
static bool put_fields(int kind, const cJSON *j, er_rec *r)
{
    bool bad = false;
    if (kind == K_POS) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
        if (st) {
            int found = -1;
            for (int i = 0; cJSON_IsString(st) && i < NSTATUS; i++)
                if (strcmp(st->valuestring, statuses[i]) == 0)
                    found = i;
            if (found < 0)
                return false;
            r->status = found;
        }
        const cJSON *loc = cJSON_GetObjectItemCaseSensitive(j, "location");
        if (loc && !cJSON_IsObject(loc))
            return false;
        if (!put_str(j, "title", r, P_TITLE, &bad) || !put_str(j, "department", r, P_DEPT, &bad) ||
            !put_str(j, "employment_type", r, P_EMPTYPE, &bad) ||
            !put_str(j, "description", r, P_DESC, &bad) ||
            !put_str(loc, "city", r, P_CITY, &bad) || !put_str(loc, "state", r, P_STATE, &bad) ||
            !put_str(loc, "country", r, P_COUNTRY, &bad))
            return false;
    } else if (kind == K_SUB) {
        long stage = r->stage_id;
        const cJSON *rj = cJSON_GetObjectItemCaseSensitive(j, "rejected");
        if (rj && !cJSON_IsBool(rj))
            return false;
        if (rj)
            r->rejected = cJSON_IsTrue(rj);
        if (!put_id(j, "position_id", &r->position_id, false, &bad) ||
            !put_id(j, "contact_id", &r->contact_id, false, &bad) ||
            !put_id(j, "stage_id", &stage, false, &bad) ||
            !put_id(j, "status_id", &r->status_id, true, &bad) ||
            !put_id(j, "disposition_reason_id", &r->reason_id, true, &bad) ||
            !known_stage(stage) || (r->reason_id && !known_reason(r->reason_id)))
            return false;
        r->stage_id = (int)stage;
    } else {
        if (!put_str(j, "first_name", r, C_FIRST, &bad) ||
            !put_str(j, "last_name", r, C_LAST, &bad) || !put_str(j, "email", r, C_EMAIL, &bad) ||
            !put_str(j, "phone", r, C_PHONE, &bad))
            return false;
        const cJSON *tags = cJSON_GetObjectItemCaseSensitive(j, "tags");
        if (tags) {
            if (!cJSON_IsArray(tags))
                return false;
            r->ntags = 0;
            for (const cJSON *t = tags->child; t; t = t->next) {
                long v;
                if (!json_int(t, &v) || add_tag(r, v) < 0)
                    return false;
            }
        }
    }
    const cJSON *ca = cJSON_GetObjectItemCaseSensitive(j, "created_at");
    if (ca && (!cJSON_IsString(ca) || parse_stamp(ca->valuestring, &r->created) != 0))
        return false;
    return !bad;
}

static er_rec *rec_clone(const er_rec *src)
{
    er_rec *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->id = src->id;
    r->upd = src->upd;
    r->created = src->created;
    r->status = src->status;
    r->position_id = src->position_id;
    r->contact_id = src->contact_id;
    r->status_id = src->status_id;
    r->reason_id = src->reason_id;
    r->stage_id = src->stage_id;
    r->rejected = src->rejected;
    for (int i = 0; i < P_NSTR; i++)
        if (set_str(r, i, src->str[i]) != 0)
            goto fail;
    for (size_t i = 0; i < src->ntags; i++)
        if (add_tag(r, src->tags[i]) < 0)
            goto fail;
    return r;
fail:
    rec_free(r);
    return NULL;
}

long ah_erecruit_sim_put(ah_erecruit_sim *e, const char *kind, const char *json)
{
    int k = kind_from_str(kind);
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    long id = 0, result = -1;
    if (k < 0 || !cJSON_IsObject(j))
        goto out;
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (jid && !json_int(jid, &id))
        goto out;
    const cJSON *ju = cJSON_GetObjectItemCaseSensitive(j, "updated_at");
    int64_t upd = 0;
    if (ju && (!cJSON_IsString(ju) || parse_stamp(ju->valuestring, &upd) != 0))
        goto out;
    pthread_mutex_lock(&e->mu);
    er_kind *kk = &e->k[k];
    er_rec *old = id ? find_rec(kk, id) : NULL;
    er_rec *r = NULL;
    if (old) {
        r = rec_clone(old);
    } else {
        r = calloc(1, sizeof(*r));
        if (r) {
            r->id = id ? id : kk->next_id;
            r->created = now_local_locked(e);
            r->status = 1; /* open */
            r->stage_id = stages[0].id;
        }
    }
    if (r && put_fields(k, j, r)) {
        r->upd = ju ? upd : now_local_locked(e);
        if (old) {
            /* The clone takes over what put does not touch. */
            r->custom = old->custom;
            r->notes = old->notes;
            r->nnotes = old->nnotes;
            r->docs = old->docs;
            r->ndocs = old->ndocs;
            if (!r->ref) {
                r->ref = old->ref;
                old->ref = NULL;
            }
            old->custom = NULL;
            old->notes = NULL;
            old->docs = NULL;
            old->nnotes = old->ndocs = 0;
            kind_remove(kk, old);
            rec_free(old);
        }
        if (kind_insert(kk, r) == 0) {
            result = r->id;
            r = NULL;
        }
    }
    pthread_mutex_unlock(&e->mu);
    rec_free(r);
out:
    cJSON_Delete(j);
    return result;
}

static char *print_locked(ah_erecruit_sim *e, int kind, long id, int what)
{
    if (kind < 0)
        return NULL;
    cJSON *out = NULL;
    pthread_mutex_lock(&e->mu);
    er_rec *r = find_rec(&e->k[kind], id);
    if (r) {
        switch (what) {
        case 0: out = render(e, kind, r, kind == K_POS ? EX_CF | EX_HT : 0); break;
        case 1: out = render_notes(r); break;
        case 2: out = render_docs(r); break;
        case 3: out = custom_values(e, kind, r); break;
        default: break;
        }
    }
    pthread_mutex_unlock(&e->mu);
    char *txt = out ? cJSON_PrintUnformatted(out) : NULL;
    cJSON_Delete(out);
    return txt;
}

char *ah_erecruit_sim_get(ah_erecruit_sim *e, const char *kind, long id)
{
    return print_locked(e, kind_from_str(kind), id, 0);
}

char *ah_erecruit_sim_notes(ah_erecruit_sim *e, const char *kind, long id)
{
    int k = kind_from_str(kind);
    return print_locked(e, k == K_POS ? -1 : k, id, 1);
}

char *ah_erecruit_sim_documents(ah_erecruit_sim *e, const char *kind, long id)
{
    int k = kind_from_str(kind);
    return print_locked(e, k == K_POS ? -1 : k, id, 2);
}

char *ah_erecruit_sim_custom_fields(ah_erecruit_sim *e, const char *kind, long id)
{
    return print_locked(e, kind_from_str(kind), id, 3);
}

char *ah_erecruit_sim_tags(ah_erecruit_sim *e, long contact_id)
{
    cJSON *out = NULL;
    pthread_mutex_lock(&e->mu);
    er_rec *r = find_rec(&e->k[K_CON], contact_id);
    if (r) {
        out = cJSON_CreateArray();
        for (size_t i = 0; out && i < r->ntags; i++) {
            cJSON *t = cJSON_CreateNumber((double)r->tags[i]);
            if (!t || !cJSON_AddItemToArray(out, t)) {
                cJSON_Delete(t);
                cJSON_Delete(out);
                out = NULL;
            }
        }
    }
    pthread_mutex_unlock(&e->mu);
    char *txt = out ? cJSON_PrintUnformatted(out) : NULL;
    cJSON_Delete(out);
    return txt;
}

size_t ah_erecruit_sim_ids(ah_erecruit_sim *e, const char *kind, long **out)
{
    int k = kind_from_str(kind);
    *out = NULL;
    if (k < 0)
        return 0;
    pthread_mutex_lock(&e->mu);
    const er_kind *kk = &e->k[k];
    size_t n = kk->n;
    long *ids = n ? malloc(n * sizeof(*ids)) : NULL;
    for (size_t i = 0; ids && i < n; i++)
        ids[i] = kk->order[i]->id;
    pthread_mutex_unlock(&e->mu);
    if (!ids)
        return 0;
    *out = ids;
    return n;
}

void ah_erecruit_sim_expire_tokens(ah_erecruit_sim *e)
{
    pthread_mutex_lock(&e->mu);
    e->ntokens = 0;
    pthread_mutex_unlock(&e->mu);
}

void ah_erecruit_sim_stats(ah_erecruit_sim *e, ah_erecruit_stats *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->mu);
}

unsigned long ah_erecruit_sim_requests(ah_erecruit_sim *e, const char *method,
                                       const char *path_prefix)
{
    size_t plen = path_prefix ? strlen(path_prefix) : 0;
    unsigned long n = 0;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->ncounts; i++) {
        const er_count *c = &e->counts[i];
        if ((!method || strcmp(c->method, method) == 0) &&
            (!plen || strncmp(c->path, path_prefix, plen) == 0))
            n += c->n;
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

unsigned long ah_erecruit_sim_acted(ah_erecruit_sim *e, long id)
{
    pthread_mutex_lock(&e->mu);
    er_rec *r = find_rec(&e->k[K_SUB], id);
    unsigned long n = r != NULL ? r->acted : 0;
    pthread_mutex_unlock(&e->mu);
    return n;
}
