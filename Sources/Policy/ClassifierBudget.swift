public enum ClassifierBudget { public static let threadStackSize = 64 << 20 }
