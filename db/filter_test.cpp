// The filter language: what each expression compiles to (SQL and bound values), which
// faces it selects on a small hand-built workspace, that nothing typed is ever run as
// SQL, and that random token soup never crashes the parser or yields SQL that fails.
#include "db/filter.h"

#include <random>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "db/dataset.h"
#include "db/db.h"
#include "db/test_workspace.h"

namespace moeforge::db {
namespace {

std::string Show(const std::vector<SqlValue>& params) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& p : params) {
    std::visit([&](const auto& v) { j.push_back(v); }, p);
  }
  return j.dump();
}

// The tag-row subquery the compiler writes, with `cond` after the tag.
std::string TagRow(const std::string& cond) {
  return "EXISTS (SELECT 1 FROM face_tags ft WHERE ft.tagger_id = ? AND ft.face_id = v_dataset.face_id AND ft.tag = ? AND " +
         cond + ")";
}
const std::string kBinaryPresent = TagRow("coalesce(ft.present, ft.score >= ?)");
std::string ExclusivePresent(int n) {
  std::string in;
  for (int i = 0; i < n; ++i) in += i ? ", ?" : "?";
  return TagRow("coalesce(ft.present, ft.score >= (SELECT max(g.score) FROM face_tags g WHERE g.tagger_id = "
                "ft.tagger_id AND g.face_id = ft.face_id AND g.tag IN (" + in + ")))");
}
const std::string kHairIn = R"("blonde_hair","brown_hair","black_hair","blue_hair","pink_hair","purple_hair","green_hair","red_hair","silver_hair","white_hair","orange_hair","aqua_hair","grey_hair")";
const std::string kSourceTag =
    "EXISTS (SELECT 1 FROM posts sp JOIN source_tags st ON st.post_id = sp.id WHERE sp.image_sha256 = "
    "v_dataset.image_sha256 AND st.tag = ?)";

TEST(Filter, CompilesToBoundSqlAndSelectsTheRightFaces) {
  TestWorkspace fx;
  TaggerInfo t1 = fx.Tagger(1);
  ASSERT_EQ(t1.id, 1);
  struct Case {
    const char* filter;
    std::string sql;
    std::string params;  // JSON
    std::set<int64_t> faces;  // of detector 1, judged by tagger 1
  } cases[] = {
      {"", "1", "[]", {1, 2, 3, 4}},
      {"1", "1", "[]", {1, 2, 3, 4}},
      {"false", "0", "[]", {}},
      {"mono_score < 0.5", "coalesce(v_dataset.mono_score < ?, 0)", "[0.5]", {1, 2, 3}},
      {"face_size >= 64", "coalesce(min(v_dataset.w, v_dataset.h) >= ?, 0)", "[64]", {1, 3, 4}},
      {"faces_in_image = 1", "v_dataset.faces_in_image IS ?", "[1]", {1, 4}},
      {"faces_in_image == 2", "v_dataset.faces_in_image IS ?", "[2]", {2, 3}},
      {"sharpness > 50", "coalesce(v_dataset.sharpness > ?, 0)", "[50]", {1, 4}},
      // Unknown sharpness (face 3) is not > 50, and so is `not (sharpness > 50)`.
      {"not (sharpness > 50)", "NOT coalesce(v_dataset.sharpness > ?, 0)", "[50]", {2, 3}},
      {"pad_frac <= 0.1", "coalesce(v_dataset.pad_frac <= ?, 0)", "[0.1]", {1, 3, 4}},
      {"image_width >= 800", "coalesce(v_dataset.image_width >= ?, 0)", "[800]", {2, 3}},
      {"rating = general", "v_dataset.rating IS ?", R"(["general"])", {1}},
      {"rating != 'explicit'", "v_dataset.rating IS NOT ?", R"(["explicit"])", {1, 2, 3}},
      {"rating <> explicit", "v_dataset.rating IS NOT ?", R"(["explicit"])", {1, 2, 3}},
      {"rating in (general, sensitive)", "coalesce(v_dataset.rating IN (?, ?), 0)", R"(["general","sensitive"])",
       {1, 2, 3}},
      {"rating not in (general)", "NOT coalesce(v_dataset.rating IN (?), 0)", R"(["general"])", {2, 3, 4}},
      {"source = danbooru", "v_dataset.source IS ?", R"(["danbooru"])", {1, 2, 3, 4}},
      {"detector = \"cascade:lbp\"", "v_dataset.detector IS ?", R"(["cascade:lbp"])", {1, 2, 3, 4}},
      {"source_tag = \"solo\"", kSourceTag, R"(["solo"])", {1, 4}},
      {"source_tag != solo", "NOT " + kSourceTag, R"(["solo"])", {2, 3}},
      {"source_tag in (monochrome, 2girls)", "(" + kSourceTag + " OR " + kSourceTag + ")",
       R"(["monochrome","2girls"])", {2, 3, 4}},
      {"blonde_hair > 0.7", TagRow("ft.score > ?"), R"([1,"blonde_hair",0.7])", {1}},
      {"blond_hair >= 0.3", TagRow("ft.score >= ?"), R"([1,"blonde_hair",0.3])", {1, 2}},  // an alias
      {"glasses < 0.5", TagRow("ft.score < ?"), R"([1,"glasses",0.5])", {1, 3, 4}},
      {"smile", kBinaryPresent, R"([1,"smile",0.5])", {1, 4}},  // face 3: the tagger said no
      {"not glasses", "NOT " + kBinaryPresent, R"([1,"glasses",0.5])", {1, 3, 4}},
      {"hair_color = blonde", ExclusivePresent(13), R"([1,"blonde_hair",)" + kHairIn + "]", {1}},
      {"hair_color = brown_hair", ExclusivePresent(13), R"([1,"brown_hair",)" + kHairIn + "]", {2}},
      {"eye_color != blue", "NOT " + ExclusivePresent(10), "", {2, 4}},
      {"hair_color in (silver, black)", "(" + ExclusivePresent(13) + " OR " + ExclusivePresent(13) + ")", "", {3, 4}},
      // and binds tighter than or; not tighter than and.
      {"smile and not glasses or rating = sensitive",
       "((" + kBinaryPresent + " AND NOT " + kBinaryPresent + ") OR v_dataset.rating IS ?)",
       R"([1,"smile",0.5,1,"glasses",0.5,"sensitive"])", {1, 2, 3, 4}},
      {"smile and (not glasses or rating = sensitive)",
       "(" + kBinaryPresent + " AND (NOT " + kBinaryPresent + " OR v_dataset.rating IS ?))",
       R"([1,"smile",0.5,1,"glasses",0.5,"sensitive"])", {1, 4}},
      {"NOT smile AND face_size >= 64", "(NOT " + kBinaryPresent + " AND coalesce(min(v_dataset.w, v_dataset.h) >= ?, 0))",
       R"([1,"smile",0.5,64])", {3}},
      {"mono_score < 0.5 and faces_in_image = 1 and source_tag = solo", "", "", {1}},
  };
  for (const auto& c : cases) {
    auto f = CompileFilter(c.filter, &t1);
    ASSERT_TRUE(f.ok()) << c.filter << ": " << f.status().ToString();
    if (!c.sql.empty()) {
      EXPECT_EQ(f->sql, c.sql) << c.filter;
    }
    if (!c.params.empty()) {
      EXPECT_EQ(Show(f->params), c.params) << c.filter;
    }
    EXPECT_EQ(fx.Run(*f), c.faces) << c.filter << "\n" << f->sql << "\n" << Show(f->params);
  }
}

TEST(Filter, TagConditionsReadTheTaggerAsked) {
  TestWorkspace fx;
  TaggerInfo t1 = fx.Tagger(1), t2 = fx.Tagger(2);
  EXPECT_EQ(fx.Run(*CompileFilter("hair_color = blonde", &t1)), (std::set<int64_t>{1}));
  EXPECT_EQ(fx.Run(*CompileFilter("hair_color = blonde", &t2)), (std::set<int64_t>{}));
  EXPECT_EQ(fx.Run(*CompileFilter("hair_color = brown", &t2)), (std::set<int64_t>{1, 2}));
  auto newest = FindTagger(fx.db(), "builtin:t");
  ASSERT_TRUE(newest.ok());
  EXPECT_EQ(newest->id, 2) << "a bare name means the newest version";
  EXPECT_FALSE(FindTagger(fx.db(), "builtin:t@3333").ok());
}

TEST(Filter, ErrorsNameTheColumnOfTheBadToken) {
  TestWorkspace fx;
  TaggerInfo t1 = fx.Tagger(1);
  struct Case {
    const char* filter;
    const char* starts;    // the message begins with
    const char* contains;  // and says
  } cases[] = {
      {"no_such_column > 1", "column 1:", "unknown name 'no_such_column'"},
      {"mono_score < 0.5 and bogus", "column 22:", "unknown name 'bogus'"},
      {"mono_score <", "column 13:", "expected a value"},
      {"mono_score < 0.5)", "column 17:", "expected `and`, `or` or the end"},
      {"(smile", "column 7:", "expected ')'"},
      {"rating > general", "column 8:", "is text"},
      {"face_size >= big", "column 14:", "compares with a number"},
      {"blonde_hair = yes", "column 15:", "compare a tag's score with a number"},
      {"hair_color = plaid", "column 14:", "not a tag of group hair_color"},
      {"hair_color", "column 1:", "is a tag group"},
      {"face_size", "column 1:", "needs a comparison"},
      {"rating = 'general", "column 10:", "never closed"},
      {"smile & glasses", "column 7:", "unexpected '&'"},
      {"mono_score < 0.5; DROP TABLE faces", "column 17:", "unexpected ';'"},
      {"mono_score < 0.5 -- comment", "column 18:", "unexpected '-'"},
      {"0.5x > 1", "column 1:", "neither a number nor a name"},
      {"1girl", "column 1:", "unknown name '1girl'"},
      {"smil and mono_scor < 1", "column 1:", "unknown name 'smil' (did you mean 'smile'?)"},
      {"faces_in_imag = 1", "column 1:", "(did you mean 'faces_in_image'?)"},
      {"1 > 0", "column 3:", "starts with a name"},
      {"1e999 > 0", "column 1:", "not a number"},
      {"and smile", "column 1:", "expected a name"},
  };
  for (const auto& c : cases) {
    auto f = CompileFilter(c.filter, &t1);
    ASSERT_FALSE(f.ok()) << c.filter << " compiled to " << f->sql;
    EXPECT_EQ(f.status().ExitCode(), 2) << c.filter;
    EXPECT_EQ(f.status().message().rfind(c.starts, 0), 0u) << c.filter << ": " << f.status().message();
    EXPECT_NE(f.status().message().find(c.contains), std::string::npos) << c.filter << ": " << f.status().message();
  }
  auto untagged = CompileFilter("smile", nullptr);
  ASSERT_FALSE(untagged.ok());
  EXPECT_NE(untagged.status().message().find("no tagger has tagged"), std::string::npos) << untagged.status().message();
}

// Whatever is typed, it either fails to compile or reaches SQLite as bound values only:
// the SQL text never contains it and the workspace is intact afterwards.
TEST(Filter, InjectionAttemptsAreRejectedOrMatchedAsLiterals) {
  TestWorkspace fx;
  TaggerInfo t1 = fx.Tagger(1);
  struct Case {
    const char* filter;
    bool compiles;
    std::set<int64_t> faces;
  } cases[] = {
      {"1) OR 1 OR (1", false, {}},
      {"mono_score < 0.5) OR (1 = 1", false, {}},
      {"rating = 'x' OR '1'='1'", false, {}},
      {"rating = general' OR 1=1 --", false, {}},
      {"mono_score < 0.5 /* */", false, {}},
      {"mono_score < 0.5 # x", false, {}},
      {"face_size >= 64; DELETE FROM faces", false, {}},
      {"rating = general UNION SELECT 1", false, {}},
      {"m\xD0\xBEno_score < 0.5", false, {}},        // Cyrillic o
      {"rating \xEF\xBC\x9D general", false, {}},     // fullwidth =
      {"smile\xE2\x80\x8B", false, {}},               // zero-width space
      {"rating = \"general'); DROP TABLE faces; --\"", true, {}},
      {"source_tag = \"x'); DROP TABLE faces; --\"", true, {4}},  // the fixture's literal tag
      {"rating = 'gen''eral'", true, {}},
      {"rating = \"\xEF\xBD\x87" "eneral\"", true, {}},  // fullwidth g: a different word
      {"rating = \"general\"", true, {1}},
      {"source_tag in (\"solo\", \"' OR 1=1 --\")", true, {1, 4}},
  };
  for (const auto& c : cases) {
    auto f = CompileFilter(c.filter, &t1);
    ASSERT_EQ(f.ok(), c.compiles) << c.filter << ": " << (f.ok() ? f->sql : f.status().ToString());
    if (!f.ok()) {
      EXPECT_EQ(f.status().ExitCode(), 2);
      EXPECT_EQ(f.status().message().rfind("column ", 0), 0u) << f.status().message();
      continue;
    }
    for (const auto& p : f->params) {
      if (std::holds_alternative<std::string>(p) && std::get<std::string>(p).size() > 3) {
        EXPECT_EQ(f->sql.find(std::get<std::string>(p)), std::string::npos) << c.filter;
      }
    }
    EXPECT_EQ(f->sql.find('\''), std::string::npos) << "no literal in the SQL: " << f->sql;
    EXPECT_EQ(fx.Run(*f), c.faces) << c.filter;
  }
  EXPECT_EQ(*fx.db().QueryInt("SELECT count(*) FROM faces"), 6) << "the faces table is intact";
}

// Random sequences of the language's tokens and of junk: the compiler returns an error
// or SQL that SQLite prepares and runs. Seeded, so a failure reproduces.
TEST(Filter, RandomTokenStringsNeverCrashAndAlwaysYieldRunnableSql) {
  TestWorkspace fx;
  TaggerInfo t1 = fx.Tagger(1);
  const std::vector<std::string> vocab = {
      "smile", "glasses", "hair_color", "eye_color", "blonde", "blonde_hair", "source_tag", "rating", "face_size",
      "mono_score", "sharpness", "faces_in_image", "detector", "general", "solo", "and", "or", "not", "in", "AND",
      "true", "false", "(", ")", "(", ")", ",", "=", "!=", "<", "<=", ">", ">=", "==", "<>", "!", "0", "1", "0.5",
      "-3", ".5", "1e3", "64", "\"solo\"", "'x''y'", "\"", "'", ";", "--", "/*", "\xD0\xBE", "\xFF", "`", "$1", "?",
      "?1", ":a", "@a", "%", "\\", "\t", "\n", "1)", "(1", "x", "select", "drop", "e", "_", "__"};
  std::mt19937 rng(20261206);
  int compiled = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string text;
    int n = 1 + static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) {
      text += vocab[rng() % vocab.size()];
      if (rng() % 3 != 0) text += ' ';
    }
    if (iter % 10 == 0) text[rng() % text.size()] = static_cast<char>(rng() % 256);  // a random byte
    auto f = CompileFilter(text, &t1);
    if (!f.ok()) {
      ASSERT_EQ(f.status().message().rfind("column ", 0), 0u) << text << ": " << f.status().message();
      continue;
    }
    ++compiled;
    auto st = fx.db().Prepare("SELECT count(*) FROM v_dataset WHERE " + f->sql);
    ASSERT_TRUE(st.ok()) << text << "\n" << f->sql << "\n" << st.status().ToString();
    ASSERT_EQ(static_cast<int>(f->params.size()), sqlite3_bind_parameter_count(st->raw())) << text;
    BindParams(*st, 1, f->params);
    auto row = st->Step();
    ASSERT_TRUE(row.ok()) << text << "\n" << f->sql << "\n" << row.status().ToString();
  }
  EXPECT_GT(compiled, 100) << "the vocabulary should form valid filters often enough to test the SQL";
  // Deep nesting is refused, not a stack overflow.
  auto deep = CompileFilter(std::string(100000, '('), &t1);
  EXPECT_FALSE(deep.ok());
  std::string nots;
  for (int i = 0; i < 5000; ++i) nots += "not ";
  EXPECT_FALSE(CompileFilter(nots + "smile", &t1).ok());
}

}  // namespace
}  // namespace moeforge::db
