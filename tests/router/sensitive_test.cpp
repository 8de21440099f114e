#include "router/sensitive.h"

#include <chrono>
#include <random>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace owl::router {
namespace {

SensitiveDetector make(const SensitiveOptions& options) {
  auto d = SensitiveDetector::make(options);
  EXPECT_TRUE(d.ok()) << d.message();
  return std::move(d).value();
}

SensitiveDetector only(const std::string& builtin) { return make({.builtin = {builtin}}); }

SensitiveDetector all() { return make({}); }

// The matched substrings, in order.
std::vector<std::string> matched(const SensitiveDetector& d, std::string_view text) {
  std::vector<std::string> out;
  for (const Detection& m : d.find(text)) out.emplace_back(text.substr(m.offset, m.length));
  return out;
}

using Strings = std::vector<std::string>;

// Each text is found exactly, alone and in a sentence, by `name` and by all built-ins together.
void expect_found(const std::string& name, const Strings& texts) {
  const SensitiveDetector one = only(name);
  const SensitiveDetector every = all();
  for (const std::string& t : texts) {
    const std::string sentence = "Here: " + t + ", thanks.";
    EXPECT_EQ(matched(one, t), Strings{t}) << name << ": " << t;
    EXPECT_EQ(matched(one, sentence), Strings{t}) << name << ": " << sentence;
    const std::vector<Detection> found = every.find(sentence);
    ASSERT_EQ(found.size(), 1u) << sentence;
    EXPECT_EQ(found[0].detector, name) << sentence;
    EXPECT_EQ(found[0].offset, 6u);
    EXPECT_EQ(found[0].length, t.size());
  }
}

// No built-in at all fires on these.
void expect_clean(const Strings& texts) {
  const SensitiveDetector every = all();
  for (const std::string& t : texts) {
    EXPECT_EQ(every.fired("see " + t + " here"), Strings{}) << t;
  }
}

// A key-shaped string: prefix + n characters of `alphabet`, seeded.
std::string fake_key(const std::string& prefix, size_t n, unsigned seed,
                     std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") {
  std::mt19937 rng(seed);
  std::string out = prefix;
  for (size_t i = 0; i < n; ++i) out += alphabet[rng() % alphabet.size()];
  return out;
}

TEST(SensitiveEmail, FindsAddresses) {
  expect_found("email", {"a.b+tag@example.co.uk", "jane.doe@example.com", "X_Y%z-1@mail-server.example.org",
                         "root@sub.domain.io"});
}

TEST(SensitiveEmail, RejectsNearMisses) {
  expect_clean({"user@localhost", "left-pad@1.3.0", "@example.com", "jane@", "jane.doe at example.com",
                "a@b.c"});
}

TEST(SensitivePhone, International) {
  expect_found("phone", {"+44 20 7946 0958", "+1 (415) 555-2671", "+49-30-123456", "0044 20 7946 0958",
                         "+33 1 23 45 67 89", "+442079460958", "+44 (0)20 7946 0958"});
}

TEST(SensitivePhone, NorthAmerican) {
  expect_found("phone", {"(415) 555-2671", "415-555-2671", "415.555.2671", "1-415-555-2671", "(212)555-0123"});
}

TEST(SensitivePhone, RejectsDatesVersionsAndPlainNumbers) {
  expect_clean({"2024-01-15", "15.01.2024", "2024-01-15T10:20:30Z", "v10.4.1-rc2", "1.2.3.4567",
                "order 20240115123", "00442079460958", "4152671234", "123-4567", "+12.5", "+48.858844",
                "UTC+0100", "3+1234567", "192.168.100.200", "415-555-26710", "(115) 555-2671",
                "415-155-2671", "1700000000"});
}

TEST(SensitivePhone, LeavesCardNumbersToTheCardDetector) {
  const SensitiveDetector d = all();
  for (const std::string card : {"4111 1111 1111 1111", "4111-1111-1111-1111", "3782 822463 10005"}) {
    EXPECT_EQ(d.fired(card), Strings{"card"}) << card;
    EXPECT_EQ(only("phone").fired(card), Strings{}) << card;
  }
}

TEST(SensitiveCard, FindsLuhnValidNumbers) {
  expect_found("card", {"4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "5555555555554444",
                        "3782 822463 10005", "30569309025904", "6011-1111-1111-1117", "2223003122003222",
                        "4222222222222"});
}

TEST(SensitiveCard, RejectsLuhnFailuresAndOtherNumbers) {
  expect_clean({"4111 1111 1111 1112", "4111111111111112", "5555555555554443", "3782 822463 10006",
                "1234567890123456",           // no issuer starts with 1
                "41111111111111111111111",    // too long
                "4111 1111 1111",             // too short
                "4111 11111 111 1111",        // not a card grouping
                "0.4111111111111111"});       // a decimal
}

TEST(SensitiveCard, TakesTheNumberBeforeATrailingYear) {
  EXPECT_EQ(matched(only("card"), "card 4111 1111 1111 1111 2027"), Strings{"4111 1111 1111 1111"});
}

TEST(SensitiveIban, FindsChecksummedIbans) {
  expect_found("iban", {"GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", "DE89 3704 0044 0532 0130 00",
                        "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300", "ES91 2100 0418 4502 0005 1332",
                        "CH93 0076 2011 6238 5295 7", "BE68 5390 0754 7034", "IT60 X054 2811 1010 0000 0123 456",
                        "NO9386011117947"});
}

TEST(SensitiveIban, RejectsWrongCheckDigitsAndLengths) {
  expect_clean({"GB82 WEST 1234 5698 7654 33", "GB83 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 01",
                "DE89 3704 0044 0532 0130 0",   // DE is 22 long
                "GB82west12345698765432"});
}

TEST(SensitiveIban, CutsAKnownLengthBeforeAFollowingCode) {
  EXPECT_EQ(matched(only("iban"), "GB82 WEST 1234 5698 7654 32 EURO"), Strings{"GB82 WEST 1234 5698 7654 32"});
  EXPECT_EQ(matched(only("iban"), "BE68 5390 0754 7034 EURO"), Strings{"BE68 5390 0754 7034"});
  EXPECT_EQ(matched(only("iban"), "BE68 5390 0754 7034 12"), Strings{"BE68 5390 0754 7034"});
  EXPECT_TRUE(only("iban").find("BE68 5390 0754 703412").empty());  // no boundary after 16
}

TEST(SensitiveSsn, FindsValidNumbers) {
  expect_found("us_ssn", {"123-45-6789", "078-05-1120", "665-01-0001", "899-99-9999"});
}

TEST(SensitiveSsn, RejectsInvalidAreasGroupsAndSerials) {
  expect_clean({"000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456", "123-00-4567", "123-45-0000",
                "123456789", "123-45-67890", "1123-45-6789", "2024-01-15"});
}

TEST(SensitiveSecret, FindsProviderKeys) {
  expect_found("secret", {
                             fake_key("sk-", 48, 1),
                             fake_key("sk-proj-", 120, 2, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"),
                             fake_key(std::string("sk-ant-") + "api03-", 93, 3),
                             "AKIAIOSFODNN7EXAMPLE",
                             fake_key("ASIA", 16, 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
                             fake_key("ghp_", 36, 5),
                             fake_key("gho_", 36, 6),
                             fake_key("ghs_", 36, 7),
                             fake_key(std::string("github_") + "pat_", 82, 8),
                             fake_key(std::string("xoxb-") + "1234567890-", 24, 9),
                             fake_key("xoxp-", 40, 10),
                             fake_key("AIza", 35, 11),
                             fake_key(std::string("sk_") + "live_", 24, 12),
                             fake_key(std::string("rk_") + "live_", 24, 13),
                         });
}

TEST(SensitiveSecret, FindsPemPrivateKeys) {
  const std::string begin = std::string("-----BEGIN ") + "RSA PRIVATE KEY-----";
  const std::string end = std::string("-----END ") + "RSA PRIVATE KEY-----";
  const std::string body = "\n" + fake_key("MIIEow", 64, 14) + "\n" + fake_key("", 64, 15) + "\n";
  const std::string pem = begin + body + end;
  expect_found("secret", {pem, std::string("-----BEGIN ") + "PRIVATE KEY-----" + body + "-----END " + "PRIVATE KEY-----",
                          std::string("-----BEGIN ") + "OPENSSH PRIVATE KEY-----" + body + "-----END " +
                              "OPENSSH PRIVATE KEY-----"});
  // Cut off before its END line: to the end of the text.
  const std::string cut = "key:\n" + begin + body;
  EXPECT_EQ(matched(only("secret"), cut), Strings{cut.substr(5)});
  // Text after the END line is not part of it.
  EXPECT_EQ(matched(only("secret"), pem + "\nafter"), Strings{pem});
  expect_clean({std::string("-----BEGIN ") + "PUBLIC KEY-----" + body + "-----END PUBLIC KEY-----",
                std::string("-----BEGIN ") + "CERTIFICATE-----" + body + "-----END CERTIFICATE-----"});
}

TEST(SensitiveSecret, FindsPasswordsInUrls) {
  const SensitiveDetector d = only("secret");
  EXPECT_EQ(matched(d, "postgres://app:hunter2@db.example.com:5432/x"), Strings{"app:hunter2"});
  EXPECT_EQ(matched(d, "redis://:s3cret@cache:6379"), Strings{":s3cret"});
  EXPECT_EQ(matched(d, "see https://bob:p@ss:w0rd@example.com/path?q=1 ok"), Strings{"bob:p@ss:w0rd"});
  EXPECT_EQ(d.redact("git clone https://me:tok3n@git.example.com/r.git"),
            "git clone https://[REDACTED:secret]@git.example.com/r.git");
  expect_clean({"https://example.com:8443/path", "https://user@intranet/", "http://host:80/a@b",
                "https://example.com/?next=a:b@c", "mailto:jane"});
}

TEST(SensitiveSecret, FindsJwts) {
  const std::string jwt = std::string("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.") +
                          "eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
  expect_found("secret", {jwt, std::string("eyJhbGciOiJub25lIn0.") + "eyJzdWIiOiIxIn0."});
  expect_clean({"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJ.a.b"});
}

TEST(SensitiveSecret, RejectsIdentifiersThatAreNotKeys) {
  expect_clean({"123e4567-e89b-12d3-a456-426614174000",          // UUID
                "9fceb02d0ae598e95dc970b74767f19372d61af8",      // git SHA-1
                "d41d8cd98f00b204e9800998ecf8427e",              // MD5
                "sk-learn-tutorial-for-beginners-part-two",      // a slug, not random
                "AKIA1234",                                      // too short
                "ghp_short", "task-1234567890123456789012", "xoxb-", "AIzaShort"});
}

TEST(SensitiveFind, OffsetsAreBytesInTextOrder) {
  const SensitiveDetector d = all();
  const std::string text = "Mail é jane@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111.";
  const std::vector<Detection> found = d.find(text);
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found[0].detector, "email");
  EXPECT_EQ(found[0].offset, text.find("jane"));
  EXPECT_EQ(found[0].length, std::string("jane@example.com").size());
  EXPECT_EQ(found[1].detector, "phone");
  EXPECT_EQ(found[1].offset, text.find("+44"));
  EXPECT_EQ(found[2].detector, "card");
  EXPECT_EQ(found[2].offset, text.find("4111"));
  EXPECT_EQ(d.fired(text), (Strings{"card", "email", "phone"}));
  EXPECT_EQ(d.redact(text),
            "Mail é [REDACTED:email] or call [REDACTED:phone]; card [REDACTED:card].");
}

TEST(SensitiveFind, CleanTextIsUnchanged) {
  const SensitiveDetector d = all();
  const std::string text = "Version 1.2.3 shipped on 2024-01-15 with 42 fixes (see #1234).";
  EXPECT_TRUE(d.find(text).empty());
  EXPECT_EQ(d.redact(text), text);
  EXPECT_EQ(d.redact(""), "");
  EXPECT_TRUE(d.fired("").empty());
}

TEST(SensitiveFind, OverlappingMatchesMergeAndAllFire) {
  // The URL password overlaps the e-mail-shaped "pw@db.example.com": one detection covering both.
  const SensitiveDetector d = all();
  const std::string text = "dsn=mysql://root:pw@db.example.com/app";
  const std::vector<Detection> found = d.find(text);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].detector, "secret");
  EXPECT_EQ(found[0].offset, text.find("root"));
  EXPECT_EQ(found[0].offset + found[0].length, text.find("/app"));
  EXPECT_EQ(d.fired(text), (Strings{"email", "secret"}));
  EXPECT_EQ(d.redact(text), "dsn=mysql://[REDACTED:secret]/app");
}

TEST(SensitiveCustom, Regex) {
  const SensitiveDetector d = make({.builtin = {}, .custom = {{.name = "employee_id", .regex = R"(\bEMP-\d{6}\b)"}}});
  EXPECT_EQ(matched(d, "ids EMP-123456 and EMP-654321, not EMP-12345"), (Strings{"EMP-123456", "EMP-654321"}));
  EXPECT_EQ(d.redact("by EMP-123456."), "by [REDACTED:employee_id].");
  EXPECT_EQ(d.names(), Strings{"employee_id"});
}

TEST(SensitiveCustom, WordsAreWholeWordsAnyCase) {
  const SensitiveDetector d =
      make({.builtin = {}, .custom = {{.name = "codenames", .words = {"Falcon", "project  blue", "C++", "Zürich"}}}});
  EXPECT_EQ(matched(d, "FALCON launch; falconry; Project\n Blue; C++ code; zürich office; ZÜRICH"),
            (Strings{"FALCON", "Project\n Blue", "C++", "zürich", "ZÜRICH"}));
  EXPECT_TRUE(d.find("falcons C+ Zurich projectblue").empty());
}

TEST(SensitiveCustom, LongerWordsWin) {
  const SensitiveDetector d = make({.builtin = {}, .custom = {{.name = "places", .words = {"new york", "new york city"}}}});
  EXPECT_EQ(matched(d, "in New York City today"), Strings{"New York City"});
}

TEST(SensitiveCustom, RegexAndWordsTogetherWithBuiltins) {
  const SensitiveDetector d =
      make({.builtin = {"email"}, .custom = {{.name = "internal", .regex = "ACME-[0-9]+", .words = {"Acme Secret"}}}});
  EXPECT_EQ(d.fired("ACME-42 and acme secret"), Strings{"internal"});
  EXPECT_EQ(d.fired("mail x@acme.com re ACME-42"), (Strings{"email", "internal"}));
  EXPECT_EQ(d.names(), (Strings{"email", "internal"}));
}

TEST(SensitiveCustom, InvalidUtf8InTheText) {
  const SensitiveDetector d =
      make({.custom = {{.name = "city", .regex = "Zürich|caf\\w"}, {.name = "w", .words = {"naïve"}}}});
  const std::string text = std::string("\xff\xfe Z\xc3\xbcrich \xc3\x28 caf\xe9 na\xc3\xafve \xed\xa0\x80 jane@example.com \x80");
  EXPECT_EQ(matched(d, text), (Strings{"Zürich", "naïve", "jane@example.com"}));
}

TEST(SensitiveOptions, Errors) {
  const auto error = [](const SensitiveOptions& o) {
    auto d = SensitiveDetector::make(o);
    EXPECT_FALSE(d.ok());
    return d.ok() ? std::string() : d.message();
  };
  EXPECT_EQ(error({.builtin = {"email", "passport"}}),
            "sensitive: unknown built-in detector 'passport' (known: email, phone, card, iban, us_ssn, secret)");
  EXPECT_EQ(error({.builtin = {"card", "card"}}), "sensitive: built-in detector 'card' is listed twice");
  EXPECT_EQ(error({.custom = {{.name = "proj", .regex = "(abc"}}}),
            "sensitive: custom detector 'proj': regex '(abc' does not compile at offset 4: missing closing parenthesis");
  EXPECT_EQ(error({.custom = {{.name = "empty"}}}), "sensitive: custom detector 'empty': neither a regex nor any words");
  EXPECT_EQ(error({.custom = {{.name = "w", .words = {"ok", "  "}}}}), "sensitive: custom detector 'w': word 2 is empty");
  EXPECT_EQ(error({.custom = {{.name = "email", .regex = "x"}}}), "sensitive: detector name 'email' is used twice");
  EXPECT_EQ(error({.custom = {{.name = "a", .regex = "x"}, {.name = "a", .words = {"y"}}}}),
            "sensitive: detector name 'a' is used twice");
  EXPECT_EQ(error({.custom = {{.name = "bad name]", .regex = "x"}}}),
            "sensitive: custom detector name 'bad name]': use letters, digits, '_', '-' and '.'");
  EXPECT_EQ(error({.custom = {{.name = "", .regex = "x"}}}),
            "sensitive: custom detector name '': use letters, digits, '_', '-' and '.'");
  const std::string bad_utf8 = error({.custom = {{.name = "w", .words = {"ok", "ab\xff"}}}});
  EXPECT_TRUE(bad_utf8.starts_with("sensitive: custom detector 'w': word 2 'ab\xff' does not compile at offset 2: "))
      << bad_utf8;
  // The name of a built-in that is off is free for a custom detector.
  EXPECT_TRUE(SensitiveDetector::make({.builtin = {"card"}, .custom = {{.name = "email", .regex = "@corp"}}}).ok());
}

TEST(SensitiveRobustness, RandomBytesFinishFast) {
  const SensitiveDetector d =
      make({.custom = {{.name = "r", .regex = R"((?i)secret\s*[:=]\s*\S+)"}, {.name = "w", .words = {"falcon", "Zürich"}}}});
  std::mt19937 rng(17);
  std::string text(200 * 1024 + 3, '\0');
  for (char& c : text) c = static_cast<char>(rng() & 0xFF);
  // Sprinkle in fragments that start matches so that the patterns do real work.
  const Strings fragments = {"@", "+44 ", "4111 ", "GB82 ", "sk-", "-----BEGIN ", "://", "eyJ", "123-45-", "falcon"};
  for (size_t i = 0; i < 2000; ++i) {
    const std::string& f = fragments[rng() % fragments.size()];
    text.replace(rng() % (text.size() - f.size()), f.size(), f);
  }
  const auto start = std::chrono::steady_clock::now();
  const std::vector<Detection> found = d.find(text);
  const std::string redacted = d.redact(text);
  (void)d.fired(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 5.0);
  size_t end = 0;
  for (const Detection& m : found) {
    EXPECT_GE(m.offset, end);
    EXPECT_GT(m.length, 0u);
    end = m.offset + m.length;
  }
  EXPECT_LE(end, text.size());
}

TEST(SensitiveRobustness, PathologicalUserRegexFailsClosedFast) {
  const SensitiveDetector d = make({.builtin = {"email"}, .custom = {{.name = "evil", .regex = "(a+)+$"},
                                                                    {.name = "deep", .regex = "(a|a)*[0-9]"}}});
  const std::string as(50 * 1024, 'a');
  const auto start = std::chrono::steady_clock::now();
  // All 'a': (a+)+$ matches at once; (a|a)* backtracks exponentially looking for a digit.
  EXPECT_EQ(d.fired(as), (Strings{"deep", "evil"}));
  // A trailing '!': both patterns hit a limit in the search from offset 0, which counts as a
  // match from there to the end, over the e-mail address.
  const std::string text = "x@example.com " + as + "!";
  EXPECT_EQ(d.fired(text), (Strings{"deep", "email", "evil"}));
  const std::vector<Detection> found = d.find(text);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].detector, "evil");
  EXPECT_EQ(found[0].offset, 0u);
  EXPECT_EQ(found[0].length, text.size());
  EXPECT_EQ(d.redact(text), "[REDACTED:evil]");
  // A search that hits the limit after an earlier match: from where that search began.
  const SensitiveDetector later = make({.builtin = {}, .custom = {{.name = "ids", .regex = "ID-[0-9]+|(a+)+$"}}});
  EXPECT_EQ(later.redact("ID-7 " + as + "!"), "[REDACTED:ids][REDACTED:ids]");
  EXPECT_EQ(later.find("ID-7 " + as + "!")[1].offset, 4u);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 5.0);
}

TEST(SensitiveRobustness, ConcurrentFind) {
  const SensitiveDetector d = make({.custom = {{.name = "w", .words = {"falcon"}}}});
  std::vector<std::string> texts;
  for (int t = 0; t < 4; ++t) {
    std::string s;
    for (int i = 0; i < 200; ++i) {
      s += "row " + std::to_string(i) + " user" + std::to_string(t) + "@example.com 4111 1111 1111 1111 Falcon " +
           "GB82 WEST 1234 5698 7654 32 +44 20 7946 0958 | ";
    }
    texts.push_back(s);
  }
  std::vector<std::vector<Detection>> expected;
  for (const std::string& s : texts) expected.push_back(d.find(s));
  ASSERT_EQ(expected[0].size(), 1000u);
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t, copy = d] {
      for (int round = 0; round < 20; ++round) {
        const SensitiveDetector& which = round % 2 == 0 ? d : copy;
        const std::vector<Detection> got = which.find(texts[t]);
        bool same = got.size() == expected[t].size();
        for (size_t i = 0; same && i < got.size(); ++i) {
          same = got[i].offset == expected[t][i].offset && got[i].length == expected[t][i].length &&
                 got[i].detector == expected[t][i].detector;
        }
        mismatches[t] += same ? 0 : 1;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace owl::router
