// The sensitive-data detectors: true positives and the near misses that must not fire, offsets
// and redaction, the user's own detectors, bad options, hostile input.
#include "router/sensitive.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <thread>

namespace owl::router {
namespace {

const SensitiveDetector& all() {
  static const SensitiveDetector d = [] {
    auto made = SensitiveDetector::make({});
    EXPECT_TRUE(made.ok()) << made.message();
    return std::move(*made);
  }();
  return d;
}

std::vector<std::string> fired(std::string_view text) { return all().fired(text); }
using Names = std::vector<std::string>;

TEST(Sensitive, EachBuiltinFindsWhatItNames) {
  EXPECT_EQ(fired("write to a.b+tag@example.co.uk today"), Names{"email"});
  EXPECT_EQ(fired("call +44 20 7946 0958"), Names{"phone"});
  EXPECT_EQ(fired("call +1 (415) 555-2671 now"), Names{"phone"});
  EXPECT_EQ(fired("fax +49-30-123456"), Names{"phone"});
  EXPECT_EQ(fired("or 0044 20 7946 0958"), Names{"phone"});
  EXPECT_EQ(fired("office (415) 555-2671"), Names{"phone"});
  EXPECT_EQ(fired("office 415-555-2671."), Names{"phone"});
  EXPECT_EQ(fired("card 4111 1111 1111 1111 exp 12/29"), Names{"card"});
  EXPECT_EQ(fired("card 4111-1111-1111-1111"), Names{"card"});
  EXPECT_EQ(fired("amex 378282246310005"), Names{"card"});
  EXPECT_EQ(fired("pay to GB82 WEST 1234 5698 7654 32 please"), Names{"iban"});
  EXPECT_EQ(fired("pay to GB82WEST12345698765432"), Names{"iban"});
  EXPECT_EQ(fired("DE89 3704 0044 0532 0130 00"), Names{"iban"});
  EXPECT_EQ(fired("ssn 123-45-6789"), Names{"us_ssn"});
  EXPECT_EQ(fired("key sk-proj-abcdefghijklmnopqrstuvwxyz0123"), Names{"secret"});
  EXPECT_EQ(fired("sk-ant-api03-abcdefghijklmnopqrstuvwxyz"), Names{"secret"});
  EXPECT_EQ(fired("aws AKIAIOSFODNN7EXAMPLE"), Names{"secret"});
  EXPECT_EQ(fired("ghp_abcdefghijklmnopqrstuvwxyz0123456789"), Names{"secret"});
  EXPECT_EQ(fired("xoxb-123456789012-abcdefghij"), Names{"secret"});
  EXPECT_EQ(fired("AIzaSyA1234567890abcdefghijklmnopqrstuv"), Names{"secret"});
  EXPECT_EQ(fired("sk_live_abcdefghijklmnop1234"), Names{"secret"});
  EXPECT_EQ(fired("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"), Names{"secret"});
  EXPECT_EQ(fired("-----BEGIN PRIVATE KEY-----\nMIIEow... (cut)"), Names{"secret"});
  EXPECT_EQ(fired("db at postgres://admin:hunter2@db.internal:5432/x"), Names{"secret"});
  EXPECT_EQ(fired("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"), Names{"secret"});
}

TEST(Sensitive, NearMissesDoNotFire) {
  for (const char* text : {
           "card 4111 1111 1111 1112",              // fails Luhn
           "GB82 WEST 1234 5698 7654 33",            // wrong check digits
           "DE8937040044053201300",                  // too short for DE
           "on 2024-01-15 at 10:30",                 // a date
           "version 1.2.3 and 10.0.19045",           // versions
           "order 123456789012",                     // a plain long number
           "id 550e8400-e29b-41d4-a716-446655440000",  // a UUID
           "commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",  // a git SHA
           "ssn 000-12-3456 or 666-12-3456 or 123-00-4567 or 123-45-0000",
           "user@localhost",                         // no domain
           "sk-short",                               // too short for a key
           "http://example.com/path:with@colon",     // no password
           "0000 0000 0000 0000",                    // all zeros pass Luhn but are not a card
           "The quick brown fox jumps over the lazy dog."}) {
    EXPECT_EQ(fired(text), Names{}) << text;
  }
}

TEST(Sensitive, OffsetsAndRedaction) {
  const std::string text = "mail bob@example.com, card 4111 1111 1111 1111.";
  auto found = all().find(text);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].detector, "email");
  EXPECT_EQ(text.substr(found[0].offset, found[0].length), "bob@example.com");
  EXPECT_EQ(found[1].detector, "card");
  EXPECT_EQ(text.substr(found[1].offset, found[1].length), "4111 1111 1111 1111");
  EXPECT_EQ(all().redact(text), "mail [REDACTED:email], card [REDACTED:card].");
  EXPECT_EQ(all().redact("nothing here"), "nothing here");
}

TEST(Sensitive, CustomRegexesAndWordLists) {
  auto d = SensitiveDetector::make({.builtin = {"email"},
                                    .custom = {{.name = "ticket", .regex = "TCK-[0-9]{6}"},
                                               {.name = "project", .words = {"Bluebird", "c++ core"}}}});
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_EQ(d->fired("see TCK-123456"), Names{"ticket"});
  EXPECT_EQ(d->fired("the bluebird launch"), Names{"project"});  // case-insensitive
  EXPECT_EQ(d->fired("bluebirds fly"), Names{});                  // whole words only
  EXPECT_EQ(d->fired("the C++ Core team"), Names{"project"});     // quoted, not a regex
  EXPECT_EQ(d->fired("call +44 20 7946 0958"), Names{});          // phone is off
  EXPECT_EQ(d->fired("Ünïcode ok, Bluebird and x@y.io"), (Names{"email", "project"}));
}

TEST(Sensitive, BadOptionsAreErrorsNamingTheDetector) {
  auto expect = [](const SensitiveOptions& o, const std::string& text) {
    auto d = SensitiveDetector::make(o);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.message().find(text), std::string::npos) << d.message();
  };
  expect({.builtin = {"emails"}}, "'emails' is not a built-in detector (one of: secret, email, card, iban, us_ssn, phone)");
  expect({.builtin = {}, .custom = {{.name = "x", .regex = "a("}}}, "detector 'x': the regex does not compile at offset 2");
  expect({.builtin = {}, .custom = {{.name = "x"}}}, "detector 'x' has neither a regex nor words");
  expect({.builtin = {"email"}, .custom = {{.name = "email", .regex = "a"}}}, "detector 'email' is named twice");
  expect({.builtin = {}, .custom = {{.name = "w", .words = {""}}}}, "detector 'w' has an empty word");
}

TEST(Sensitive, HostileInputFinishesAndFailsClosed) {
  std::mt19937 rng(7);
  std::string noise(200 * 1024, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  const auto start = std::chrono::steady_clock::now();
  (void)all().find(noise);
  (void)all().redact(noise);
  // A catastrophic user regex stops at its limit and counts as a match.
  auto d = SensitiveDetector::make({.builtin = {}, .custom = {{.name = "evil", .regex = "(a+)+$"}}});
  ASSERT_TRUE(d.ok());
  const std::string as = std::string(50 * 1024, 'a') + "!";
  EXPECT_EQ(d->fired(as), Names{"evil"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  // Invalid UTF-8 with a UTF regex.
  auto u = SensitiveDetector::make({.builtin = {}, .custom = {{.name = "word", .words = {"café"}}}});
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->fired("\xff\xfe caf\xc3\xa9 \xc3"), Names{"word"});
}

TEST(Sensitive, ConcurrentCallersGetTheSameAnswers) {
  const std::string text = "mail bob@example.com, card 4111 1111 1111 1111, AKIAIOSFODNN7EXAMPLE";
  const auto expected = all().redact(text);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (all().redact(text) != expected) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace owl::router
