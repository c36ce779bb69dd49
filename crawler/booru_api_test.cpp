// Every recorded real API response in ../shared/assets/api must parse (SOURCES.md there
// lists the quirks each file carries).
#include "crawler/booru_api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/workspace.h"
#include "crawler/xml_reader.h"

namespace moeforge::crawler {
namespace {

std::string ApiDir() {
  return std::string(MOEFORGE_SOURCE_DIR) + "/../shared/assets/api/";
}

struct Case {
  const char* file;
  Dialect dialect;
  const char* base;
  size_t posts;
};

const Case kCases[] = {
    {"danbooru/post_4086764_2020-09_booruchan.json", Dialect::kDanbooru, "https://danbooru.donmai.us", 1},
    {"danbooru/post_6148688_2023-03_booru-rs.json", Dialect::kDanbooru, "https://danbooru.donmai.us", 1},
    {"danbooru/posts_2020-07_grabber.json", Dialect::kDanbooru, "https://danbooru.donmai.us", 10},
    {"danbooru/posts_2020-09_booruchan.json", Dialect::kDanbooru, "https://danbooru.donmai.us", 20},
    {"danbooru/posts_2023-03_booru-rs.json", Dialect::kDanbooru, "https://danbooru.donmai.us", 10},
    {"danbooru/posts_2023-06_boorusphere.json", Dialect::kDanbooru, "https://danbooru.donmai.us", 5},
    {"danbooru/waifuc_meta_sidecar_6814120_2023-10.json", Dialect::kDanbooru, "https://danbooru.donmai.us", 1},
    {"danbooru/post_2020-09_booruchan.xml", Dialect::kDanbooru, "https://danbooru.donmai.us", 1},
    {"danbooru/posts_2016-07_grabber.xml", Dialect::kDanbooru, "https://danbooru.donmai.us", 20},
    {"danbooru/posts_2020-07_grabber.xml", Dialect::kDanbooru, "https://danbooru.donmai.us", 10},
    {"danbooru/posts_2020-09_booruchan.xml", Dialect::kDanbooru, "https://danbooru.donmai.us", 20},
    {"gelbooru/dapi_post_8297763_2023-03_attributes.json", Dialect::kGelbooru, "https://gelbooru.com", 1},
    {"gelbooru/dapi_post_id1_2020-09_bare.json", Dialect::kGelbooru, "https://gelbooru.com", 1},
    {"gelbooru/dapi_posts_2020-09_bare_array.json", Dialect::kGelbooru, "https://gelbooru.com", 20},
    {"gelbooru/dapi_posts_2023-03_attributes.json", Dialect::kGelbooru, "https://gelbooru.com", 10},
    {"gelbooru/dapi_posts_2023-04_attributes.json", Dialect::kGelbooru, "https://gelbooru.com", 10},
    {"gelbooru/dapi_posts_2023-06_attributes.json", Dialect::kGelbooru, "https://gelbooru.com", 5},
    {"gelbooru/dapi_post_5612477_2020-10_attr.xml", Dialect::kGelbooru, "https://gelbooru.com", 1},
    {"gelbooru/dapi_posts_2017-09_attr.xml", Dialect::kGelbooru, "https://gelbooru.com", 20},
    {"gelbooru/dapi_posts_2020-09_attr.xml", Dialect::kGelbooru, "https://gelbooru.com", 20},
    {"gelbooru/dapi_posts_2023-06_elements.xml", Dialect::kGelbooru, "https://gelbooru.com", 5},
    {"safebooru_org/dapi_post_4296456_2023-03.json", Dialect::kGelbooru, "https://safebooru.org", 1},
    {"safebooru_org/dapi_posts_2023-04.json", Dialect::kGelbooru, "https://safebooru.org", 10},
    {"safebooru_org/dapi_posts_2023-06_attr.xml", Dialect::kGelbooru, "https://safebooru.org", 5},
    {"moebooru/konachan_com_post_2023-03_booru-rs.json", Dialect::kMoebooru, "https://konachan.com", 10},
    {"moebooru/konachan_com_post_id354323_2023-03_booru-rs.json", Dialect::kMoebooru, "https://konachan.com", 1},
    {"moebooru/konachan_net_post_2023-06_boorusphere.json", Dialect::kMoebooru, "https://konachan.net", 5},
};

Result<PostPage> Load(const Case& c) {
  auto body = ReadFile(ApiDir() + c.file);
  if (!body.ok()) return body.status();
  return ParsePostPage(c.dialect, *body, c.base);
}

TEST(BooruApi, EveryRecordedResponseParses) {
  for (const auto& c : kCases) {
    auto page = Load(c);
    ASSERT_TRUE(page.ok()) << c.file << ": " << page.status().ToString();
    ASSERT_EQ(page->posts.size(), c.posts) << c.file;
    for (const auto& p : page->posts) {
      EXPECT_FALSE(p.remote_id.empty()) << c.file;
      EXPECT_FALSE(p.tags.empty()) << c.file << " post " << p.remote_id;
      EXPECT_GT(p.width, 0) << c.file << " post " << p.remote_id;
      EXPECT_GT(p.height, 0) << c.file << " post " << p.remote_id;
      // Every post in these files carries a file (SOURCES.md): built or given, absolute.
      EXPECT_EQ(p.file_url.rfind("https://", 0), 0u) << c.file << " post " << p.remote_id << ": " << p.file_url;
      EXPECT_TRUE(p.skip_reason.empty() || p.skip_reason == "not_image") << c.file;
      EXPECT_NE(p.rating, "") << c.file;
      for (const auto& [t, cat] : p.tags) EXPECT_EQ(t.find_first_of(" \n\t"), std::string::npos) << c.file;
    }
  }
}

TEST(BooruApi, QuirksAreHandled) {
  // safebooru.org: no file_url, built from directory + image (not from the md5 "hash").
  auto sb = Load(kCases[22]);
  ASSERT_TRUE(sb.ok());
  EXPECT_EQ(sb->posts[0].remote_id, "4342828");
  EXPECT_EQ(sb->posts[0].file_url, "https://safebooru.org/images/4157/353874c9907bc77c452b4a1586c5878296322e8c.jpg");
  EXPECT_EQ(sb->posts[0].md5, "d54360a83dc5e02239440493e19f5bca");
  EXPECT_EQ(sb->posts[0].rating, "general");

  // Danbooru 2023: new rating letters (g = general); tags keep their categories.
  auto d23 = Load(kCases[4]);
  ASSERT_TRUE(d23.ok());
  EXPECT_EQ(d23->posts[0].rating, "general");
  EXPECT_EQ(d23->posts[0].file_url, "https://cdn.donmai.us/original/dc/12/dc123eec97d06c3aa9cd53d65a2c7abf.jpg");
  bool has_char = false;
  for (const auto& [t, cat] : d23->posts[0].tags)
    if (t == "lady_zuri") has_char = (cat == "character");
  EXPECT_TRUE(has_char);

  // Danbooru 2020: "s" meant safe then.
  auto d20 = Load(kCases[2]);
  ASSERT_TRUE(d20.ok());
  bool any_safe = false;
  for (const auto& p : d20->posts) {
    EXPECT_NE(p.rating, "sensitive");
    any_safe |= p.rating == "safe";
  }
  EXPECT_TRUE(any_safe);

  // Danbooru 2016 XML: relative file URLs resolve against the site.
  auto d16 = Load(kCases[8]);
  ASSERT_TRUE(d16.ok());
  EXPECT_EQ(d16->posts[0].remote_id, "2434967");
  EXPECT_EQ(d16->posts[0].file_url,
            "https://danbooru.donmai.us/data/__original_drawn_by_bespin__98bf686ca7910ee0ad48e59ba99807d3.jpg");

  // Gelbooru 2020 XML with bare '&' in attributes: read, and the '&' kept.
  auto g20 = Load(kCases[19]);
  ASSERT_TRUE(g20.ok());
  EXPECT_EQ(g20->posts[0].remote_id, "5554940");
  int with_amp = 0;
  for (const auto& p : g20->posts) with_amp += p.meta_json.find("mode=medium&illust_id=") != std::string::npos;
  EXPECT_EQ(with_amp, 7);
  EXPECT_GT(g20->count, 0);

  // Moebooru: Unix created_at becomes ISO 8601.
  auto mb = Load(kCases[25]);
  ASSERT_TRUE(mb.ok());
  EXPECT_EQ(mb->posts[0].created_at, "2023-03-17T05:09:24Z");
  EXPECT_EQ(mb->posts[0].rating, "safe");
  EXPECT_EQ(mb->posts[0].md5, "e53d6e7c9046076fdb2ce4ab07e9f0c5");
  EXPECT_EQ(mb->posts[0].page_url, "https://konachan.com/post/show/354323");
}

TEST(BooruApi, EdgeShapes) {
  struct Edge {
    const char* body;
    bool ok;
    size_t posts;
    const char* first_skip;
  };
  const Edge kEdges[] = {
      // Gelbooru: nothing matched -> @attributes and no "post" key.
      {R"({"@attributes":{"limit":100,"offset":0,"count":0}})", true, 0, ""},
      {"[]", true, 0, ""},
      {"", true, 0, ""},
      // Danbooru: a post the user may not see has no md5 / file_url.
      {R"([{"id":7,"rating":"e","image_width":10,"image_height":10,"tag_string":"a b"}])", true, 1, "restricted"},
      {R"([{"id":8,"file_url":"https://x/y.mp4","file_ext":"mp4","tag_string":"a"}])", true, 1, "video"},
      {R"([{"id":8,"file_url":"https://x/y.zip","file_ext":"zip","tag_string":"a"}])", true, 1, "ugoira"},
      {R"([{"id":8,"file_url":"https://x/y.psd","file_ext":"psd","tag_string":"a"}])", true, 1, "not_image"},
      // No AVIF decoder in this build: skipped by name before any download.
      {R"([{"id":8,"file_url":"https://x/y.avif","file_ext":"avif","tag_string":"a"}])", true, 1, "avif"},
      {R"([{"id":8,"is_banned":true,"file_ext":"jpg","tag_string":"a"}])", true, 1, "banned"},
      {R"([{"id":8,"is_deleted":true,"file_ext":"jpg","tag_string":"a"}])", true, 1, "deleted"},
      {R"({"success":false,"message":"You cannot search for more than 2 tags at a time."})", false, 0, ""},
      {"<html><body>oops", false, 0, ""},
      {"{not json", false, 0, ""},
  };
  for (const auto& e : kEdges) {
    auto page = ParsePostPage(Dialect::kDanbooru, e.body, "https://danbooru.donmai.us");
    ASSERT_EQ(page.ok(), e.ok) << e.body;
    if (!e.ok) continue;
    ASSERT_EQ(page->posts.size(), e.posts) << e.body;
    if (e.posts) EXPECT_EQ(page->posts[0].skip_reason, e.first_skip) << e.body;
  }
}

TEST(BooruApi, PageUrls) {
  EXPECT_EQ(PostPageUrl(Dialect::kDanbooru, "http://h:1/", "solo -monochrome", 2, 100),
            "http://h:1/posts.json?tags=solo%20-monochrome&page=2&limit=100");
  EXPECT_EQ(PostPageUrl(Dialect::kMoebooru, "http://h:1", "a", 1, 50), "http://h:1/post.json?tags=a&page=1&limit=50");
  EXPECT_EQ(PostPageUrl(Dialect::kGelbooru, "http://h:1", "", 3, 100),
            "http://h:1/index.php?page=dapi&s=post&q=index&json=1&tags=&pid=2&limit=100");
}

TEST(XmlReader, TolerantButNotBlind) {
  auto ok = ParseXml("<?xml version=\"1.0\"?><a x='1 &amp; 2'><b>t &lt;3 &#x41;</b><c/><!-- c --></a>");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->attrs.at("x"), "1 & 2");
  EXPECT_EQ((*ok)->Child("b")->text, "t <3 A");
  EXPECT_TRUE(ParseXml("<a x=\"p?q=1&r=2\"/>").ok());
  EXPECT_FALSE(ParseXml("<a><b></a>").ok());
  EXPECT_FALSE(ParseXml("<a>").ok());
  EXPECT_FALSE(ParseXml("no xml").ok());
}

}  // namespace
}  // namespace moeforge::crawler

namespace moeforge::crawler {
namespace {

// Each recorded response's page continues through the id cursor that site documents:
// Danbooru `page=b<ID>` (its API help: "b" + id for the posts before it), Moebooru and
// Gelbooru the `id:<ID` metatag on their first page. The cursor is the page's lowest id.
TEST(BooruApi, CursorUrlFromEveryRecordedResponse) {
  for (const Case& c : kCases) {
    auto page = Load(c);
    ASSERT_TRUE(page.ok()) << c.file << ": " << page.status().ToString();
    int64_t low = 0;
    for (const auto& p : page->posts) {
      int64_t id = std::stoll(p.remote_id);
      low = low == 0 ? id : std::min(low, id);
      for (const auto& v : p.variants) EXPECT_EQ(v.url.rfind("http", 0), 0u) << c.file << " " << v.url;
    }
    ASSERT_GT(low, 0) << c.file;
    std::string id = std::to_string(low), base = c.base;
    std::string want;
    switch (c.dialect) {
      case Dialect::kDanbooru:
        want = base + "/posts.json?tags=1girl%20solo&page=b" + id + "&limit=20";
        break;
      case Dialect::kMoebooru:
        want = base + "/post.json?tags=1girl%20solo%20id%3A%3C" + id + "&page=1&limit=20";
        break;
      case Dialect::kGelbooru:
        want = base + "/index.php?page=dapi&s=post&q=index&json=1&tags=1girl%20solo%20id%3A%3C" + id + "&pid=0&limit=20";
        break;
    }
    EXPECT_EQ(CursorPageUrl(c.dialect, c.base, "1girl solo", low, 20), want) << c.file;
  }
  EXPECT_EQ(CursorPageUrl(Dialect::kGelbooru, "https://gelbooru.com", "", 7, 100),
            "https://gelbooru.com/index.php?page=dapi&s=post&q=index&json=1&tags=id%3A%3C7&pid=0&limit=100");
  EXPECT_TRUE(OrdersOtherThanNewest("solo order:score"));
  EXPECT_FALSE(OrdersOtherThanNewest("solo order:id_desc"));
}

// The recorded Danbooru responses with a sample: large_file_url (2020) or the
// media_asset variants (2023) become renditions with sizes.
TEST(BooruApi, RecordedSamplesBecomeVariants) {
  auto page = Load(kCases[2]);  // posts_2020-07_grabber.json: has_large posts
  ASSERT_TRUE(page.ok());
  int with_sample = 0;
  for (const auto& p : page->posts)
    for (const auto& v : p.variants)
      if (v.name == "sample") {
        ++with_sample;
        EXPECT_NE(v.url.find("/data/sample/"), std::string::npos) << v.url;
        EXPECT_EQ(v.width, std::min<int64_t>(850, p.width));
      }
  EXPECT_GT(with_sample, 0);
  auto modern = Load(kCases[5]);  // posts_2023-06_boorusphere.json: media_asset variants
  ASSERT_TRUE(modern.ok());
  ASSERT_FALSE(modern->posts[0].variants.empty());
  EXPECT_GT(modern->posts[0].variants.back().width, 0);
}

}  // namespace
}  // namespace moeforge::crawler
