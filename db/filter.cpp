// A hand-written tokenizer and recursive-descent parser: the grammar is small enough
// that a generator would cost more than it saves, and hand-written code gives errors
// that name the column of the bad token. The SQL is built from this file's own
// fragments; what the user typed reaches SQLite only as bound parameters.
#include "db/filter.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "core/strings.h"

namespace moeforge::db {

namespace {

enum class Tok { kWord, kNumber, kString, kOp, kLParen, kRParen, kComma, kEnd };

struct Token {
  Tok kind;
  std::string text;  // words and operators as written; strings without quotes
  size_t pos;        // byte offset in the filter text
};

std::string At(size_t pos) { return "column " + std::to_string(pos + 1) + ": "; }

bool IsWordStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Only printable ASCII outside quotes: a look-alike letter from another script or a
// stray ';' stops here with its column instead of becoming part of a name.
Result<std::vector<Token>> Tokenize(const std::string& s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
      continue;
    }
    size_t start = i;
    if (IsWordStart(c)) {
      while (i < s.size() && IsWordChar(s[i])) ++i;
      out.push_back({Tok::kWord, s.substr(start, i - start), start});
    } else if (IsDigit(c) || ((c == '-' || c == '.') && i + 1 < s.size() && (IsDigit(s[i + 1]) || s[i + 1] == '.'))) {
      if (c == '-') ++i;
      while (i < s.size() && (IsDigit(s[i]) || s[i] == '.')) ++i;
      if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
        while (i < s.size() && IsDigit(s[i])) ++i;
      }
      bool digits_only = s.find_first_not_of("0123456789", start) >= i;
      if (i < s.size() && IsWordChar(s[i]) && digits_only) {
        // Danbooru words may start with a digit (1girl, 2girls): a word, usable as a value.
        while (i < s.size() && IsWordChar(s[i])) ++i;
        out.push_back({Tok::kWord, s.substr(start, i - start), start});
        continue;
      }
      if (i < s.size() && IsWordChar(s[i]))
        return Status::InvalidArgument(At(start) + "'" + s.substr(start, i + 1 - start) +
                                       "' is neither a number nor a name (quote text: \"...\")");
      out.push_back({Tok::kNumber, s.substr(start, i - start), start});
    } else if (c == '"' || c == '\'') {
      // A quote inside is written twice, as in SQL and CSV; no other escapes.
      std::string text;
      ++i;
      while (true) {
        if (i >= s.size()) return Status::InvalidArgument(At(start) + "this quote is never closed");
        if (s[i] == c) {
          if (i + 1 < s.size() && s[i + 1] == c) {
            text += c;
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        text += s[i++];
      }
      out.push_back({Tok::kString, text, start});
    } else if (c == '(' || c == ')' || c == ',') {
      out.push_back({c == '(' ? Tok::kLParen : c == ')' ? Tok::kRParen : Tok::kComma, std::string(1, c), start});
      ++i;
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
      std::string op(1, c);
      ++i;
      if (i < s.size() && (s[i] == '=' || (c == '<' && s[i] == '>'))) op += s[i++];
      if (op == "!") return Status::InvalidArgument(At(start) + "'!' alone: write `not` or `!=`");
      if (op == "==") op = "=";
      if (op == "<>") op = "!=";
      out.push_back({Tok::kOp, op, start});
    } else {
      unsigned char u = static_cast<unsigned char>(c);
      std::string shown = u >= 0x80 ? "a non-ASCII character (quote text that has one)" : "'" + std::string(1, c) + "'";
      return Status::InvalidArgument(At(start) + "unexpected " + shown +
                                     "; a filter is names, numbers, \"text\", = != < <= > >=, in, and, or, not, ( )");
    }
  }
  out.push_back({Tok::kEnd, "", s.size()});
  return out;
}

enum class ColType { kNumber, kText };

struct Column {
  const char* name;
  const char* sql;  // over v_dataset
  ColType type;
};

// The columns a filter may name: v_dataset's, plus face_size (the face box's shorter
// side in the original image's pixels: what a user means by "a face at least 64 px").
const Column kColumns[] = {
    {"face_id", "v_dataset.face_id", ColType::kNumber},
    {"post_id", "v_dataset.post_id", ColType::kNumber},
    {"x", "v_dataset.x", ColType::kNumber},
    {"y", "v_dataset.y", ColType::kNumber},
    {"w", "v_dataset.w", ColType::kNumber},
    {"h", "v_dataset.h", ColType::kNumber},
    {"face_size", "min(v_dataset.w, v_dataset.h)", ColType::kNumber},
    {"score", "v_dataset.score", ColType::kNumber},
    {"detector_score", "v_dataset.score", ColType::kNumber},
    {"crop_size", "v_dataset.crop_size", ColType::kNumber},
    {"sharpness", "v_dataset.sharpness", ColType::kNumber},
    {"mono_score", "v_dataset.mono_score", ColType::kNumber},
    {"pad_frac", "v_dataset.pad_frac", ColType::kNumber},
    {"faces_in_image", "v_dataset.faces_in_image", ColType::kNumber},
    {"image_width", "v_dataset.image_width", ColType::kNumber},
    {"image_height", "v_dataset.image_height", ColType::kNumber},
    {"source", "v_dataset.source", ColType::kText},
    {"remote_id", "v_dataset.remote_id", ColType::kText},
    {"image_sha256", "v_dataset.image_sha256", ColType::kText},
    {"detector", "v_dataset.detector", ColType::kText},
    {"rating", "v_dataset.rating", ColType::kText},
};

const Column* FindColumn(const std::string& name) {
  for (const auto& c : kColumns)
    if (name == c.name) return &c;
  return nullptr;
}

std::string ColumnNames() {
  std::string s;
  for (const auto& c : kColumns) s += (s.empty() ? "" : ", ") + std::string(c.name);
  return s;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'smile'?)" for the closest of `names` within two edits, else "".
std::string DidYouMean(const std::string& name, const std::vector<std::string>& names) {
  std::string best;
  size_t best_d = 3;
  for (const auto& n : names) {
    size_t d = EditDistance(name, n);
    if (d < best_d) {
      best_d = d;
      best = n;
    }
  }
  return best.empty() ? std::string() : " (did you mean '" + best + "'?)";
}

bool IsKeyword(const Token& t, const char* kw) { return t.kind == Tok::kWord && AsciiLower(t.text) == kw; }
bool IsAnyKeyword(const Token& t) {
  for (const char* kw : {"and", "or", "not", "in", "true", "false"})
    if (IsKeyword(t, kw)) return true;
  return false;
}

// An SQL fragment and the values its placeholders take, in order.
struct Sql {
  std::string text;
  std::vector<SqlValue> params;
  void Append(const std::string& s) { text += s; }
  void Append(Sql&& o) {
    text += o.text;
    for (auto& p : o.params) params.push_back(std::move(p));
  }
  void Param(SqlValue v) {
    text += "?";
    params.push_back(std::move(v));
  }
};

// The SQL spelling of one of the tokenizer's operators (= != < <= > >=).
const char* SqlOp(const std::string& op) {
  for (const char* o : {"=", "<", "<=", ">", ">="})
    if (op == o) return o;
  return "<>";
}

class Parser {
 public:
  Parser(std::vector<Token> toks, const TaggerInfo* tagger) : t_(std::move(toks)), tagger_(tagger) {}

  Result<CompiledFilter> Run() {
    CompiledFilter f;
    if (Peek().kind == Tok::kEnd) {
      f.sql = "1";
      return f;
    }
    MF_ASSIGN_OR_RETURN(Sql s, Or(0));
    if (Peek().kind != Tok::kEnd) return Unexpected(Peek(), "`and`, `or` or the end");
    f.sql = std::move(s.text);
    f.params = std::move(s.params);
    f.uses_tags = uses_tags_;
    return f;
  }

 private:
  // Deep enough for any filter a person writes; stops a fuzzer's "((((((..." from
  // exhausting the stack.
  static constexpr int kMaxDepth = 64;

  const Token& Peek() const { return t_[i_]; }
  const Token& Next() { return t_[i_ < t_.size() - 1 ? i_++ : i_]; }

  static Status Unexpected(const Token& t, const std::string& wanted) {
    std::string got = t.kind == Tok::kEnd      ? "the end of the filter"
                      : t.kind == Tok::kString ? "\"" + t.text + "\""
                                               : "'" + t.text + "'";
    return Status::InvalidArgument(At(t.pos) + "expected " + wanted + ", found " + got);
  }

  Result<Sql> Or(int depth) {
    if (depth > kMaxDepth) return Status::InvalidArgument(At(Peek().pos) + "nested too deeply");
    return Chain(depth, "or", " OR ", &Parser::And);
  }
  Result<Sql> And(int depth) { return Chain(depth, "and", " AND ", &Parser::Not); }

  // operand (KEYWORD operand)*: one operand alone stays as it is, more are parenthesised.
  Result<Sql> Chain(int depth, const char* keyword, const char* sql_op, Result<Sql> (Parser::*operand)(int)) {
    MF_ASSIGN_OR_RETURN(Sql left, (this->*operand)(depth));
    if (!IsKeyword(Peek(), keyword)) return left;
    Sql s;
    s.Append("(");
    s.Append(std::move(left));
    while (IsKeyword(Peek(), keyword)) {
      Next();
      MF_ASSIGN_OR_RETURN(Sql right, (this->*operand)(depth));
      s.Append(sql_op);
      s.Append(std::move(right));
    }
    s.Append(")");
    return s;
  }

  Result<Sql> Not(int depth) {
    if (!IsKeyword(Peek(), "not")) return Primary(depth);
    Next();
    if (depth + 1 > kMaxDepth) return Status::InvalidArgument(At(Peek().pos) + "nested too deeply");
    MF_ASSIGN_OR_RETURN(Sql inner, Not(depth + 1));
    return Negated(std::move(inner), true);
  }

  Result<Sql> Primary(int depth) {
    const Token& t = Peek();
    if (t.kind == Tok::kLParen) {
      Next();
      MF_ASSIGN_OR_RETURN(Sql inner, Or(depth + 1));
      if (Peek().kind != Tok::kRParen) return Unexpected(Peek(), "')'");
      Next();
      return inner;
    }
    if (IsKeyword(t, "true") || IsKeyword(t, "false")) {
      Next();
      return Sql{IsKeyword(t, "true") ? "1" : "0", {}};
    }
    if (t.kind == Tok::kNumber) {
      // A number alone is a truth value, as in SQL: "1" selects every face.
      Token n = Next();
      MF_ASSIGN_OR_RETURN(SqlValue v, Number(n));
      bool nonzero = std::holds_alternative<int64_t>(v) ? std::get<int64_t>(v) != 0 : std::get<double>(v) != 0;
      if (Peek().kind == Tok::kOp)
        return Status::InvalidArgument(At(Peek().pos) + "a comparison starts with a name (face_size >= 64), not a number");
      return Sql{nonzero ? "1" : "0", {}};
    }
    if (t.kind != Tok::kWord || IsAnyKeyword(t)) return Unexpected(t, "a name, `not` or '('");
    return Condition();
  }

  static Result<SqlValue> Number(const Token& t) {
    bool integral = t.text.find_first_of(".eE") == std::string::npos;
    errno = 0;
    char* end = nullptr;
    if (integral) {
      long long v = std::strtoll(t.text.c_str(), &end, 10);
      if (errno == 0 && end != nullptr && *end == '\0') return SqlValue(static_cast<int64_t>(v));
    }
    errno = 0;
    double d = std::strtod(t.text.c_str(), &end);
    if (end == nullptr || *end != '\0' || !std::isfinite(d) || errno == ERANGE)
      return Status::InvalidArgument(At(t.pos) + "'" + t.text + "' is not a number");
    return SqlValue(d);
  }

  // A value after = != or in: a number, "text" or a bare word.
  Result<Token> Value() {
    const Token& v = Peek();
    if ((v.kind == Tok::kWord && !IsAnyKeyword(v)) || v.kind == Tok::kString || v.kind == Tok::kNumber) return Next();
    return Unexpected(v, "a value (a number, a word or \"text\")");
  }

  // `in (v, v, ...)` after the name; the '(' is next.
  Result<std::vector<Token>> ValueList() {
    if (Peek().kind != Tok::kLParen) return Unexpected(Peek(), "'(' after `in`");
    Next();
    std::vector<Token> out;
    while (true) {
      MF_ASSIGN_OR_RETURN(Token v, Value());
      out.push_back(std::move(v));
      if (Peek().kind == Tok::kComma) {
        Next();
        continue;
      }
      if (Peek().kind == Tok::kRParen) {
        Next();
        return out;
      }
      return Unexpected(Peek(), "',' or ')'");
    }
  }

  Result<Sql> Condition() {
    Token name = Next();
    // NAME [not] in (...) | NAME OP value | NAME alone
    bool negate_in = false;
    if (IsKeyword(Peek(), "not") && i_ + 1 < t_.size() && IsKeyword(t_[i_ + 1], "in")) {
      Next();
      negate_in = true;
    }
    if (IsKeyword(Peek(), "in")) {
      Next();
      MF_ASSIGN_OR_RETURN(std::vector<Token> values, ValueList());
      MF_ASSIGN_OR_RETURN(Sql s, InList(name, values));
      return Negated(std::move(s), negate_in);
    }
    if (Peek().kind == Tok::kOp) {
      Token op = Next();
      MF_ASSIGN_OR_RETURN(Token value, Value());
      return Compare(name, op, value);
    }
    return Bare(name);
  }

  // --- what a name means -------------------------------------------------------------

  enum class Kind { kColumn, kSourceTag, kTag, kGroup };
  struct Resolved {
    Kind kind;
    const Column* column = nullptr;
    int tag = -1;    // schema column of a tag
    int group = -1;  // schema group
  };

  Result<Resolved> Resolve(const Token& name) {
    if (const Column* c = FindColumn(name.text)) return Resolved{Kind::kColumn, c};
    if (name.text == "source_tag") return Resolved{Kind::kSourceTag};
    if (tagger_ != nullptr) {
      const TagSchema& schema = tagger_->schema;
      int tag = schema.IndexOf(name.text);
      if (tag >= 0) {
        uses_tags_ = true;
        return Resolved{Kind::kTag, nullptr, tag};
      }
      for (size_t g = 0; g < schema.groups().size(); ++g)
        if (schema.groups()[g].name == name.text) {
          uses_tags_ = true;
          return Resolved{Kind::kGroup, nullptr, -1, static_cast<int>(g)};
        }
      std::string groups;
      std::vector<std::string> known = schema.tags();
      for (const auto& g : schema.groups()) {
        groups += (groups.empty() ? "" : ", ") + g.name;
        known.push_back(g.name);
      }
      for (const auto& c : kColumns) known.push_back(c.name);
      known.push_back("source_tag");
      return Status::InvalidArgument(At(name.pos) + "unknown name '" + name.text + "'" + DidYouMean(name.text, known) +
                                     ": not a column (" + ColumnNames() +
                                     "), not a tag or tag group (" + groups + ") of tagger " + tagger_->name +
                                     "'s schema " + schema.name() + ", not source_tag");
    }
    const TagSchema& d = TagSchema::Default();
    bool looks_like_tag = d.IndexOf(name.text) >= 0;
    for (const auto& g : d.groups()) looks_like_tag = looks_like_tag || g.name == name.text;
    if (looks_like_tag)
      return Status::InvalidArgument(At(name.pos) + "'" + name.text +
                                     "' is a tag, and no tagger has tagged this workspace yet (run `moeforge tag` first)");
    std::vector<std::string> known = {"source_tag"};
    for (const auto& c : kColumns) known.push_back(c.name);
    return Status::InvalidArgument(At(name.pos) + "unknown name '" + name.text + "'" + DidYouMean(name.text, known) +
                                   ": not a column (" + ColumnNames() + ") nor source_tag");
  }

  // The face's row of tag `tag` for the tagger: "EXISTS (... AND <cond>)".
  Sql TagRow(int tag, Sql cond) {
    Sql s;
    s.Append("EXISTS (SELECT 1 FROM face_tags ft WHERE ft.tagger_id = ");
    s.Param(tagger_->id);
    s.Append(" AND ft.face_id = v_dataset.face_id AND ft.tag = ");
    s.Param(tagger_->schema.tags()[static_cast<size_t>(tag)]);
    s.Append(" AND ");
    s.Append(std::move(cond));
    s.Append(")");
    return s;
  }

  // The tagger's decision. Rows written before schema v2 have present NULL; then the
  // decision is made here as TagSchema::Decide makes it: argmax within an exclusive group
  // (a tie selects every tied tag), the tagger's recorded threshold elsewhere.
  Sql Present(int tag) {
    const TagSchema& schema = tagger_->schema;
    const TagGroup& g = schema.groups()[static_cast<size_t>(schema.group_of()[static_cast<size_t>(tag)])];
    Sql cond;
    cond.Append("coalesce(ft.present, ft.score >= ");
    if (g.exclusive) {
      cond.Append("(SELECT max(g.score) FROM face_tags g WHERE g.tagger_id = ft.tagger_id AND g.face_id = ft.face_id AND g.tag IN (");
      for (size_t k = 0; k < g.tags.size(); ++k) {
        if (k > 0) cond.Append(", ");
        cond.Param(g.tags[k]);
      }
      cond.Append("))");
    } else {
      float thr = static_cast<size_t>(tag) < tagger_->thresholds.size() ? tagger_->thresholds[static_cast<size_t>(tag)] : 0.5f;
      cond.Param(static_cast<double>(thr));
    }
    cond.Append(")");
    return TagRow(tag, std::move(cond));
  }

  // `group = value`: the group's tag named value, or value + "_..." (blonde -> blonde_hair).
  Result<int> GroupTag(int group, const Token& value) {
    const TagSchema& schema = tagger_->schema;
    const TagGroup& g = schema.groups()[static_cast<size_t>(group)];
    int found = -1;
    for (const auto& t : g.tags) {
      if (t == value.text) return schema.IndexOf(t);
      if (t.rfind(value.text + "_", 0) == 0) {
        if (found >= 0) {
          found = -2;
          break;
        }
        found = schema.IndexOf(t);
      }
    }
    if (found >= 0) return found;
    std::string tags;
    for (const auto& t : g.tags) tags += (tags.empty() ? "" : ", ") + t;
    return Status::InvalidArgument(At(value.pos) + "'" + value.text + "' " +
                                   (found == -2 ? "names more than one" : "is not a") + " tag of group " + g.name +
                                   " (" + tags + ")");
  }

  Sql SourceTag(const Token& value) {
    Sql s;
    s.Append("EXISTS (SELECT 1 FROM posts sp JOIN source_tags st ON st.post_id = sp.id "
             "WHERE sp.image_sha256 = v_dataset.image_sha256 AND st.tag = ");
    s.Param(value.text);
    s.Append(")");
    return s;
  }

  Result<Sql> Bare(const Token& name) {
    MF_ASSIGN_OR_RETURN(Resolved r, Resolve(name));
    switch (r.kind) {
      case Kind::kTag:
        return Present(r.tag);
      case Kind::kColumn:
        return Status::InvalidArgument(At(name.pos) + name.text + " needs a comparison, e.g. " + name.text +
                                       (r.column->type == ColType::kNumber ? " >= 64" : " = \"value\""));
      case Kind::kSourceTag:
        return Status::InvalidArgument(At(name.pos) + "source_tag needs a value: source_tag = \"solo\"");
      case Kind::kGroup:
        return Status::InvalidArgument(At(name.pos) + name.text + " is a tag group: name one of its tags, e.g. " +
                                       name.text + " = " + tagger_->schema.groups()[static_cast<size_t>(r.group)].tags[0]);
    }
    return Status::Internal("filter: unhandled name kind");
  }

  Result<Sql> Compare(const Token& name, const Token& op, const Token& value) {
    MF_ASSIGN_OR_RETURN(Resolved r, Resolve(name));
    bool equality = op.text == "=" || op.text == "!=";
    switch (r.kind) {
      case Kind::kColumn: {
        const Column& c = *r.column;
        if (c.type == ColType::kNumber) {
          if (value.kind != Tok::kNumber)
            return Status::InvalidArgument(At(value.pos) + name.text + " compares with a number, not '" + value.text + "'");
          MF_ASSIGN_OR_RETURN(SqlValue v, Number(value));
          return ColumnCompare(c, op.text, std::move(v));
        }
        if (!equality)
          return Status::InvalidArgument(At(op.pos) + name.text + " is text: compare it with = or !=, or use in (...)");
        return ColumnCompare(c, op.text, value.text);
      }
      case Kind::kSourceTag: {
        if (!equality) return Status::InvalidArgument(At(op.pos) + "source_tag takes = or !=");
        return Negated(SourceTag(value), op.text == "!=");
      }
      case Kind::kTag: {
        if (value.kind != Tok::kNumber)
          return Status::InvalidArgument(At(value.pos) + "compare a tag's score with a number (" + name.text +
                                         " > 0.7), or write the tag alone for the tagger's decision");
        MF_ASSIGN_OR_RETURN(SqlValue v, Number(value));
        Sql cond;
        cond.Append(std::string("ft.score ") + SqlOp(op.text) + " ");
        cond.Param(std::move(v));
        return TagRow(r.tag, std::move(cond));
      }
      case Kind::kGroup: {
        if (!equality) return Status::InvalidArgument(At(op.pos) + name.text + " is a tag group: compare it with = or !=");
        MF_ASSIGN_OR_RETURN(int tag, GroupTag(r.group, value));
        return Negated(Present(tag), op.text == "!=");
      }
    }
    return Status::Internal("filter: unhandled name kind");
  }

  static Sql Negated(Sql s, bool negate) {
    if (!negate) return s;
    Sql n;
    n.Append("NOT ");
    n.Append(std::move(s));
    return n;
  }

  // A comparison with an unknown (NULL) value is false, so `not` and != select it: the
  // filter speaks two-valued logic, not SQL's three.
  static Sql ColumnCompare(const Column& c, const std::string& op, SqlValue v) {
    Sql s;
    if (op == "=" || op == "!=") {
      s.Append(std::string(c.sql) + (op == "=" ? " IS " : " IS NOT "));
      s.Param(std::move(v));
      return s;
    }
    s.Append(std::string("coalesce(") + c.sql + " " + SqlOp(op) + " ");
    s.Param(std::move(v));
    s.Append(", 0)");
    return s;
  }

  Result<Sql> InList(const Token& name, const std::vector<Token>& values) {
    MF_ASSIGN_OR_RETURN(Resolved r, Resolve(name));
    if (r.kind == Kind::kColumn) {
      const Column& c = *r.column;
      Sql s;
      s.Append(std::string("coalesce(") + c.sql + " IN (");
      for (size_t k = 0; k < values.size(); ++k) {
        if (k > 0) s.Append(", ");
        if (c.type == ColType::kNumber) {
          if (values[k].kind != Tok::kNumber)
            return Status::InvalidArgument(At(values[k].pos) + name.text + " compares with numbers, not '" +
                                           values[k].text + "'");
          MF_ASSIGN_OR_RETURN(SqlValue v, Number(values[k]));
          s.Param(std::move(v));
        } else {
          s.Param(values[k].text);
        }
      }
      s.Append("), 0)");
      return s;
    }
    if (r.kind == Kind::kTag) return Status::InvalidArgument(At(name.pos) + name.text + " is a tag: `in` takes a column, a tag group or source_tag");
    Sql s;
    s.Append("(");
    for (size_t k = 0; k < values.size(); ++k) {
      if (k > 0) s.Append(" OR ");
      if (r.kind == Kind::kSourceTag) {
        s.Append(SourceTag(values[k]));
      } else {
        MF_ASSIGN_OR_RETURN(int tag, GroupTag(r.group, values[k]));
        s.Append(Present(tag));
      }
    }
    s.Append(")");
    return s;
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  const TaggerInfo* tagger_;
  bool uses_tags_ = false;
};

}  // namespace

Result<CompiledFilter> CompileFilter(const std::string& text, const TaggerInfo* tagger) {
  MF_ASSIGN_OR_RETURN(std::vector<Token> toks, Tokenize(text));
  return Parser(std::move(toks), tagger).Run();
}

void BindParams(Stmt& st, int first, const std::vector<SqlValue>& params) {
  int i = first;
  for (const auto& p : params) {
    if (std::holds_alternative<int64_t>(p)) st.Bind(i, std::get<int64_t>(p));
    else if (std::holds_alternative<double>(p)) st.Bind(i, std::get<double>(p));
    else st.Bind(i, std::get<std::string>(p));
    ++i;
  }
}

}  // namespace moeforge::db
