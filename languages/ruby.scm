; Ruby (tree-sitter-ruby). Capture convention: languages/README.md
; Every `def` is captured as definition.method (Ruby has no free functions: a top-level def is a private
; method of Object), so the kind does not depend on whether the enclosing container counts as class-like.

; ---------------------------------------------------------------- containers
; class Foo / class Foo::Bar < Base  (a scoped name `Foo::Bar` is reported as `Foo.Bar`)
(class
  name: [(constant) (scope_resolution)] @name) @definition.class

(module
  name: [(constant) (scope_resolution)] @name) @definition.module

; ---------------------------------------------------------------- methods
(method
  name: (_) @name) @definition.method

; def self.build / def Foo.build
(singleton_method
  name: (_) @name) @definition.method

; ---------------------------------------------------------------- constants
; VERSION = "1.0"; Point = Struct.new(:x, :y)
(assignment
  left: (constant) @name) @definition.constant

; ---------------------------------------------------------------- imports
; require "json" / require_relative "lib/util" (the method name doubles as @reference for the predicate)
(call
  !receiver
  method: (identifier) @reference
  arguments: (argument_list . (string) @import.name)
  (#any-of? @reference "require" "require_relative")) @import

; ---------------------------------------------------------------- references
; method calls: foo(1), obj.bar, Foo.new
(call
  method: (identifier) @reference)

; receivers that are constants: Foo.new, JSON.parse, A::B.call
(call
  receiver: (constant) @reference)

(call
  receiver: (scope_resolution
    name: (constant) @reference))

; class Foo < Base / < Mod::Base
(superclass (constant) @reference)

(superclass
  (scope_resolution
    name: (constant) @reference))

; include Comparable, extend Mod::Helpers, raise ArgumentError, foo(Bar)
(argument_list (constant) @reference)

(argument_list
  (scope_resolution
    name: (constant) @reference))

; rescue Errno::ENOENT, MyError => e
(exceptions (constant) @reference)

(exceptions
  (scope_resolution
    name: (constant) @reference))

; constants read as values: x = Foo::BAR, DEFAULT = Config::LIMIT
(assignment
  right: (scope_resolution
    name: (constant) @reference))
